"""Small instances whose optimum was worked out by hand (see each test), solved for real."""

from __future__ import annotations

import dataclasses

import pytest

from prsm.performance.optimize import OptimizerSettings, ResourceOptimizer
from prsm.performance.optimize._heuristics import greedy
from prsm.performance.optimize._problem import compile_problem

from .helpers import cores, gpu, llm, need, small, svc

EXACT = OptimizerSettings(in_process=True, target_gap=0.0, time_limit=20)


async def test_small_file_optimum() -> None:
    spec = small()  # the arithmetic is in helpers.small's docstring
    a = await ResourceOptimizer(EXACT).optimize_allocation(spec.workloads, spec.resources)
    assert a.objective == pytest.approx(0.18)
    assert a.cost_per_hour == pytest.approx(3.30)
    assert a.workload("search-embed").replicas == {"gpu-l4": 1}
    assert a.workload("chat").replicas == {"gpu-h100": 1}
    assert a.units == {"gpu-l4": 1, "gpu-h100": 1}
    assert a.gap == pytest.approx(0.0, abs=1e-6) and a.status == "optimal"
    assert a.bound == pytest.approx(a.objective, abs=1e-6)
    assert ResourceOptimizer(EXACT).minimize_cost_maximize_performance(a) == pytest.approx(0.18)


async def test_cost_only_weights_pick_the_cheapest() -> None:
    """Weights (1, 0): embed on the CPU unit (0.40) beats the L4 (0.80); chat 2.50 on H100."""
    spec = small()
    s = dataclasses.replace(EXACT, performance_weight=0.0)
    a = await ResourceOptimizer(s).optimize_allocation(spec.workloads, spec.resources)
    assert a.cost_per_hour == pytest.approx(2.90)
    assert a.workload("search-embed").replicas == {"cpu-8": 4}


async def test_packing_beats_greedy() -> None:
    """Five 3-core services; 8-core units at 1.00 $/h hold two, 4-core units at 0.60 hold
    one. Greedy takes the cheaper unit each time (5 × 0.60 = 3.00); the optimum is two big
    units and one small (2.60)."""
    ws = [svc(f"s{i}") for i in range(5)]
    rs = [cores("big", 8, 1.0), cores("small", 4, 0.6)]
    s = dataclasses.replace(EXACT, performance_weight=0.0)
    a = await ResourceOptimizer(s).optimize_allocation(ws, rs)
    assert a.cost_per_hour == pytest.approx(2.60)
    assert a.units == {"big": 2, "small": 1}
    g = greedy(compile_problem(ws, rs, performance_weight=0.0))
    assert g.cost == pytest.approx(3.00)


async def test_a_workload_splits_when_cheap_units_run_out() -> None:
    """6 req/s at 2 req/s a replica is 3 replicas. Two cheap GPUs (1.00) are available, the
    others cost 3.00: split, 2 cheap + 1 dear = 5.00; whole on one type, 3 dear = 9.00."""
    rs = [gpu("cheap", 1.0, 2), gpu("dear", 3.0, 10)]
    s = dataclasses.replace(EXACT, performance_weight=0.0)
    a = await ResourceOptimizer(s).optimize_allocation([llm("chat", 6.0)], rs)
    assert a.cost_per_hour == pytest.approx(5.0)
    assert a.workload("chat").replicas == {"cheap": 2, "dear": 1}
    assert a.workload("chat").share == pytest.approx({"cheap": 2 / 3, "dear": 1 / 3})
    whole = dataclasses.replace(s, split_workloads=False)
    b = await ResourceOptimizer(whole).optimize_allocation([llm("chat", 6.0)], rs)
    assert b.cost_per_hour == pytest.approx(9.0)
    assert b.workload("chat").replicas == {"dear": 3}


async def test_budget_is_respected() -> None:
    """Budget 3.00: embed moves to the CPU (0.40 + 2.50 = 2.90 $/h), objective
    -2.90 + 2 × (0.6 + 0.8) = -0.10."""
    spec = small()
    a = await ResourceOptimizer(EXACT).optimize_allocation(
        spec.workloads, spec.resources, budget_per_hour=3.0
    )
    assert a.cost_per_hour <= 3.0
    assert a.objective == pytest.approx(-0.10)
    assert a.budget_per_hour == 3.0


async def test_sla_is_respected() -> None:
    """Every workload's traffic-weighted latency is within its SLO; with chat's SLO at 5 s,
    the L4 (7 s) is out and chat stays on the H100."""
    spec = small()
    ws = [
        dataclasses.replace(w, latency_slo_ms=5000) if w.name == "chat" else w
        for w in spec.workloads
    ]
    s = dataclasses.replace(EXACT, performance_weight=0.0)
    a = await ResourceOptimizer(s).optimize_allocation(ws, spec.resources)
    assert a.workload("chat").replicas == {"gpu-h100": 1}
    for w in a.workloads:
        slo = next(x.latency_slo_ms for x in ws if x.name == w.workload)
        assert w.latency_ms <= slo


async def test_every_solver_finds_the_same_optimum() -> None:
    need("ortools")
    spec = small()
    found = {}
    for solver in ("highs", "scipy", "cp-sat"):
        s = dataclasses.replace(EXACT, solver=solver, heuristics=False)
        a = await ResourceOptimizer(s).optimize_allocation(spec.workloads, spec.resources)
        found[solver] = round(a.objective, 6)
        assert a.solver == solver
    assert set(found.values()) == {0.18}
