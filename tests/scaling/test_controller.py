"""Planning, execution with retries and reports, the tracker, the live loop and the post's
``PredictiveScaler`` — all on the manual clock and the in-memory backend."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.errors import ConfigError
from prsm.performance.monitoring._registry import MetricsRegistry
from prsm.performance.scaling import (
    ControllerSettings,
    HPAPolicy,
    HPASettings,
    InMemoryBackend,
    LoadTracker,
    PredictiveScaler,
    PredictiveSettings,
    ReplicaStatus,
    ScalingAction,
    ScalingController,
    ScalingLoop,
    load_from_store,
)

from .helpers import until


def test_plan_per_deployment_bounded_by_min_and_max() -> None:
    c = ScalingController(settings=ControllerSettings(min_replicas=2, max_replicas=8))
    plan = c.plan({"a": 3, "b": 5, "c": 4}, {"a": 6, "b": 0, "c": 4})
    got = {a.deployment: (a.action, a.target) for a in plan}
    assert got == {
        "a": (ScalingAction.SCALE_UP, 6),
        "b": (ScalingAction.SCALE_DOWN, 2),  # never below min_replicas
        "c": (ScalingAction.MAINTAIN, 4),
    }
    assert "bounded" in plan[1].reason
    [single] = c.plan(ReplicaStatus(ready=2, starting=1), 50)
    assert single.current == 3 and single.target == 8


async def test_plan_scaling_is_awaitable_as_the_post_calls_it() -> None:
    c = ScalingController()
    [a] = await c.plan_scaling(2, 4)
    assert a.action is ScalingAction.SCALE_UP and a.change == 2


def test_bad_resources_are_named() -> None:
    with pytest.raises(ConfigError) as err:
        ScalingController().plan({"a": -1}, 2)
    assert err.value.field == "current_resources[a]"


async def test_a_failed_action_is_retried_with_backoff_then_reported() -> None:
    clock = ManualClock()
    backend = InMemoryBackend(clock=clock)
    metrics = MetricsRegistry()
    c = ScalingController(
        backend, ControllerSettings(retries=3, retry_backoff=1.0), clock=clock, metrics=metrics
    )
    backend.fail_next(2)
    task = asyncio.create_task(c.scale_to(3))
    for wait in (1.0, 2.0):  # back-off doubles
        await until(lambda: clock.sleepers > 0)
        clock.advance(wait)
    report = await task
    assert report.ok and report.attempts == 3 and backend.calls == [3, 3, 3]
    assert (await backend.status()).desired == 3

    backend.fail_next(10)
    task = asyncio.create_task(c.scale_to(5))
    while not task.done():
        await asyncio.sleep(0)
        clock.advance(10.0)
    failed = await task
    assert not failed.ok and failed.attempts == 4 and "injected" in (failed.error or "")
    assert list(c.history)[-1] is failed
    text = metrics.exposition().decode()
    assert (
        'prsm_scaling_actions_total{action="scale_up",deployment="default",outcome="failed"} 1.0'
        in text
    )
    assert "prsm_scaling_retries_total" in text


async def test_in_memory_replicas_start_after_their_startup_time() -> None:
    clock = ManualClock()
    backend = InMemoryBackend(startup_time=30.0, clock=clock)
    status = await backend.scale_to(3)
    assert (status.ready, status.starting) == (1, 2)
    clock.advance(30.0)
    assert (await backend.status()).ready == 3
    status = await backend.scale_to(1)
    assert status.ready == 1 and status.desired == 1


def test_tracker_counts_arrivals_per_step_and_time_averages() -> None:
    clock = ManualClock(wall_offset=600.0)  # wall time 600 s: step boundaries at whole minutes
    t = LoadTracker(step=60.0, history=3600.0, clock=clock)
    for _ in range(3):
        t.arrived()
    t.started(0.5)
    clock.advance(10.0)  # 10 s with 3 in the system, 1 in service
    t.started(2.0)
    t.finished(4.0)
    clock.advance(10.0)  # 10 s with 2 in the system, 1 in service
    w = t.take_window()
    assert w.interval == 20.0 and w.arrivals == 3
    assert w.mean_ongoing == pytest.approx(2.5) and w.mean_busy == pytest.approx(1.0)
    assert w.mean_wait == pytest.approx(1.25) and t.service_time == 4.0
    clock.advance(60.0)
    t.arrived()
    clock.advance(60.0)
    load = t.load()
    assert load.values.tolist()[-2:] == [3.0, 1.0] and load.step == 60.0


async def test_the_loop_runs_a_policy_and_measures_start_up() -> None:
    clock = ManualClock()
    backend = InMemoryBackend(startup_time=40.0, clock=clock)
    controller = ScalingController(backend, clock=clock)
    tracker = LoadTracker(clock=clock)
    loop = ScalingLoop(
        HPAPolicy(HPASettings(target_value=1.0)),
        controller,
        tracker,
        clock=clock,
        startup_time=100.0,
    )
    for _ in range(4):
        tracker.arrived()
        tracker.started()
    clock.advance(15.0)
    step = await loop.step()
    assert step.decision.target == 4 and step.reports[0].ok
    assert step.status.ready == 1
    clock.advance(40.0)
    await loop.step()  # the new replicas are ready now: 40 s measured
    assert loop.startup_time == pytest.approx(0.7 * 100.0 + 0.3 * 40.0)
    snap = loop.snapshot()
    assert snap["policy"] == "hpa" and len(snap["steps"]) == 2
    assert snap["steps"][0]["actions"][0]["action"] == "scale_up"
    assert snap["parameters"]["target_value"] == 1.0


async def test_the_loop_keeps_running_when_a_step_fails() -> None:
    clock = ManualClock()

    class Broken(InMemoryBackend):
        async def status(self) -> Any:
            raise OSError("backend unreachable")

    controller = ScalingController(Broken(clock=clock), clock=clock)
    metrics = MetricsRegistry()
    loop = ScalingLoop(
        HPAPolicy(), controller, LoadTracker(clock=clock), clock=clock, metrics=metrics
    )
    loop.start()
    for _ in range(3):
        await until(lambda: clock.sleepers > 0)
        clock.advance(15.0)
    await loop.close()
    assert "prsm_scaling_loop_errors_total" in metrics.exposition().decode()


async def test_predict_and_scale_returns_the_posts_dict() -> None:
    clock = ManualClock()
    scaler = PredictiveScaler(settings=PredictiveSettings(cost_per_replica_hour=0.5), clock=clock)
    for _ in range(3):
        scaler.tracker.arrived()
        scaler.tracker.started()
    clock.advance(15.0)
    out = await scaler.predict_and_scale()
    assert set(out) >= {"predicted_load", "scaling_actions", "expected_cost"}
    assert out["predicted_load"] is None  # no history yet: reactive
    assert out["decision"].target == 3 and out["expected_cost"] == 1.5
    assert out["scaling_actions"][0].action is ScalingAction.SCALE_UP
    assert (await scaler.controller.status()).desired == 3
    await scaler.close()


class _Store:
    """A stand-in for the monitoring history store's ``query`` (buckets may be missing)."""

    def __init__(self, points: list[tuple[float, float]]) -> None:
        self.points = points
        self.asked: dict[str, Any] = {}

    def query(self, metric: str, labels: Any = None, **kw: Any) -> list[Any]:
        self.asked = {"metric": metric, **kw}
        return [self]


def test_load_from_the_history_store_fills_missing_steps_with_zero() -> None:
    store = _Store([(60.0, 4.0), (180.0, 2.0), (300.0, 9.0)])
    load = load_from_store(store, since=60.0, until=300.0)
    assert load.start == 60.0 and load.values.tolist() == [4.0, 0.0, 2.0, 0.0]
    assert store.asked["metric"] == "slo.requests" and store.asked["agg"] == "sum"


async def test_the_loop_reads_history_from_the_store_off_the_event_loop() -> None:
    clock = ManualClock(wall_offset=0.0)
    store = _Store([(0.0, 5.0)])
    loop = ScalingLoop(
        HPAPolicy(),
        ScalingController(InMemoryBackend(clock=clock), clock=clock),
        LoadTracker(clock=clock),
        clock=clock,
        load_history=lambda now: load_from_store(store, since=now - 3600.0, until=now),
    )
    clock.advance(120.0)
    step = await loop.step()
    assert step.context.load is not None and step.context.load.values.sum() == 5.0
