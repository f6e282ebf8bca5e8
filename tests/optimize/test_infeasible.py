"""Infeasible inputs: which constraints conflict and by how much, never a partial answer."""

from __future__ import annotations

import dataclasses

import pytest

from prsm.performance.errors import AllocationError, InfeasibleAllocationError, PRSMError
from prsm.performance.optimize import Conflict, OptimizerSettings, ResourceOptimizer

from .helpers import gpu, llm, small

SETTINGS = OptimizerSettings(in_process=True, time_limit=10)


async def test_slo_below_every_type_names_the_slo_needed() -> None:
    spec = small()
    ws = [
        dataclasses.replace(w, latency_slo_ms=1000) if w.name == "chat" else w
        for w in spec.workloads
    ]
    with pytest.raises(InfeasibleAllocationError) as err:
        await ResourceOptimizer(SETTINGS).optimize_allocation(ws, spec.resources)
    (c,) = err.value.conflicts
    assert isinstance(c, Conflict)
    assert c.constraint == "latency SLO of chat"
    assert (c.limit, c.needed, c.unit) == (1000, 1600, "ms")
    assert "gpu-h100" in str(err.value) and err.value.exact


async def test_short_units_say_how_many_more() -> None:
    """Chat with a 5 s SLO fits only the H100; none is available: one more is needed."""
    spec = small()
    ws = [
        dataclasses.replace(w, latency_slo_ms=5000) if w.name == "chat" else w
        for w in spec.workloads
    ]
    rs = [
        dataclasses.replace(r, available=0) if r.name == "gpu-h100" else r for r in spec.resources
    ]
    with pytest.raises(InfeasibleAllocationError) as err:
        await ResourceOptimizer(SETTINGS).optimize_allocation(ws, rs)
    (c,) = err.value.conflicts
    assert c.constraint == "available units of gpu-h100"
    assert (c.limit, c.needed, c.short_by) == (0, 1, 1)
    assert c.workloads == ("chat",)


async def test_budget_too_small_says_the_cheapest_cost() -> None:
    """The cheapest allocation meeting every SLO: embed on the CPU (0.40) and chat on the H100
    (2.50): 2.90 $/h against a budget of 1.00."""
    spec = small()
    with pytest.raises(InfeasibleAllocationError) as err:
        await ResourceOptimizer(SETTINGS).optimize_allocation(
            spec.workloads, spec.resources, budget_per_hour=1.0
        )
    (c,) = err.value.conflicts
    assert c.constraint == "budget"
    assert c.limit == 1.0 and c.needed == pytest.approx(2.90)
    assert "2.90 $/h" in c.detail


async def test_split_demand_over_short_types() -> None:
    """40 req/s needs 20 replicas at 2 req/s; 12 units exist across both types: 8 short."""
    rs = [gpu("a", 1.0, 5), gpu("b", 2.0, 7)]
    with pytest.raises(InfeasibleAllocationError) as err:
        await ResourceOptimizer(SETTINGS).optimize_allocation([llm("chat", 40.0)], rs)
    shortfall = sum(c.short_by or 0 for c in err.value.conflicts)
    assert shortfall == 8
    assert {c.constraint for c in err.value.conflicts} <= {
        "available units of a",
        "available units of b",
    }


def test_the_errors_sit_under_allocation_error() -> None:
    err = InfeasibleAllocationError([Conflict("budget", 1.0, 2.9, "$/h")])
    assert isinstance(err, AllocationError) and isinstance(err, PRSMError)
    assert "budget: limit 1 $/h, needs 2.9 $/h (short by 1.9)" in str(err)
