"""``ResourceOptimizer.optimize``: replicas per resource type for the auto-scaler."""

from __future__ import annotations

import pytest

from prsm.performance.errors import ConfigError, InfeasibleAllocationError
from prsm.performance.optimize import (
    CostConstraints,
    OptimizerSettings,
    ReplicaPlan,
    ResourceOptimizer,
)

from .helpers import gpu, llm

SETTINGS = OptimizerSettings(in_process=True, target_gap=0.0, performance_weight=0.0)
TYPES = [gpu("cheap", 1.0, 2), gpu("dear", 3.0, 10)]


async def test_sizes_for_the_larger_of_current_and_predicted() -> None:
    """Predicted 6 req/s (current 2): 3 replicas at 2 req/s; two cheap units then one dear."""
    opt = ResourceOptimizer(SETTINGS, resources=TYPES, services=[llm("chat", 1.0)])
    plan = await opt.optimize(current_load=2.0, predicted_load=6.0, cost_constraints=None)
    assert isinstance(plan, ReplicaPlan)
    assert plan.replicas == {"cheap": 2, "dear": 1}
    assert plan.estimated_cost == pytest.approx(5.0)
    assert plan.load == {"chat": 6.0} and plan.capacity == {"chat": 6.0}
    down = await opt.optimize(current_load=3.0, predicted_load=1.0, cost_constraints=None)
    assert sum(down.replicas.values()) == 2  # sized for the current 3 req/s


async def test_cost_constraints_and_several_services() -> None:
    opt = ResourceOptimizer(
        SETTINGS, resources=TYPES, services=[llm("chat", 1.0), llm("code", 1.0)]
    )
    plan = await opt.optimize(
        {"chat": 2.0, "code": 2.0}, {"chat": 4.0, "code": 2.0}, {"max_cost_per_hour": 6.0}
    )
    # 3 replicas in all: both cheap units and one dear unit, whoever gets which
    assert sum(sum(r.values()) for r in plan.by_service.values()) == 3
    assert plan.replicas == {"cheap": 2, "dear": 1}
    assert plan.estimated_cost == pytest.approx(5.0)
    with pytest.raises(InfeasibleAllocationError, match="budget"):
        await opt.optimize({"chat": 2.0, "code": 2.0}, {"chat": 4.0, "code": 2.0}, 4.0)
    more = await opt.optimize(
        {"chat": 0.0, "code": 0.0}, {"chat": 0.0, "code": 0.0}, CostConstraints(min_replicas=2)
    )
    assert more.by_service["chat"] and sum(more.replicas.values()) == 4


async def test_bad_calls_are_named() -> None:
    with pytest.raises(ConfigError, match="services"):
        await ResourceOptimizer(SETTINGS).optimize(1.0, 2.0, None)
    opt = ResourceOptimizer(SETTINGS, resources=TYPES, services=[llm("a", 1), llm("b", 1)])
    with pytest.raises(ConfigError, match="mapping"):
        await opt.optimize(1.0, 2.0, None)
    with pytest.raises(ConfigError, match="'b'"):
        await opt.optimize({"a": 1.0}, {"a": 1.0}, None)
    with pytest.raises(ConfigError, match=r"cost_constraints\.max_replicas"):
        await opt.optimize({"a": 1, "b": 1}, {"a": 1, "b": 1}, {"max_replicas": 3})
