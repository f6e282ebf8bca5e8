"""The simulator on hand-made traces: queueing, start-up, draining, accounting, the oracle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from prsm.performance.errors import ConfigError
from prsm.performance.scaling import HPAPolicy, HPASettings, ScalingContext, ScalingDecision
from prsm.performance.sim import OraclePolicy, SimulationSettings, Trace, busy_per_second, simulate


def trace(times: list[float], service: list[float]) -> Trace:
    return Trace("hand", np.asarray(times, dtype=float), np.asarray(service, dtype=float))


@dataclass(frozen=True)
class Script:
    """A policy that follows a schedule: ``(from time, replicas)``; records its snapshots."""

    schedule: tuple[tuple[float, int], ...]
    interval: float = 1.0
    name: str = "script"

    def initial_state(self) -> list[ScalingContext]:
        return []

    def parameters(self) -> dict[str, Any]:
        return {"schedule": self.schedule}

    def decide(
        self, ctx: ScalingContext, seen: list[ScalingContext]
    ) -> tuple[ScalingDecision, Any]:
        want = [n for t, n in self.schedule if ctx.now >= t][-1]
        return ScalingDecision.relative(want, ctx.target_replicas), [*seen, ctx]


@dataclass(frozen=True)
class Spy(Script):
    """A :class:`Script` that also keeps every snapshot in ``seen``."""

    seen: list[ScalingContext] = field(default_factory=list)

    def decide(self, ctx: ScalingContext, s: Any) -> tuple[ScalingDecision, Any]:
        self.seen.append(ctx)
        return super().decide(ctx, s)


def test_one_replica_queues_requests_in_order() -> None:
    tr = trace([0.0, 0.0, 0.0], [10.0, 10.0, 10.0])
    r = simulate(tr, Script(((0.0, 1),)), SimulationSettings(slo=15.0, tail=60.0))
    assert r.waits.tolist() == [0.0, 10.0, 20.0]
    s = r.summary()
    assert s["slo_breaches"] == 1 and s["violation_minutes"] == 1 and s["requests"] == 3


def test_new_replicas_serve_only_after_their_start_up() -> None:
    tr = trace([0.0, 0.0, 0.0], [100.0, 100.0, 100.0])
    r = simulate(tr, Script(((0.0, 3),)), SimulationSettings(startup_time=30.0, tail=60.0))
    # asked for at the first decision (t = 1 s), ready at 31 s
    assert r.waits.tolist() == [0.0, 31.0, 31.0]
    # replica-hours: one from 0, two from 1 s, to the end of the run (last arrival + tail)
    assert r.replica_hours() == pytest.approx((60.0 + 2 * 59.0) / 3600.0)


def test_concurrency_per_replica() -> None:
    tr = trace([0.0] * 4, [10.0] * 4)
    r = simulate(tr, Script(((0.0, 1),)), SimulationSettings(concurrency=2, tail=30.0))
    assert r.waits.tolist() == [0.0, 0.0, 10.0, 10.0]


def test_scale_down_drains_a_busy_replica_and_pays_until_it_finishes() -> None:
    tr = trace([0.0, 0.5], [50.0, 5.0])
    policy = Script(((0.0, 2), (10.0, 1)))
    r = simulate(tr, policy, SimulationSettings(initial_replicas=2, tail=100.0))
    assert r.waits.tolist() == [0.0, 0.0]  # both served: nothing in flight is lost
    times, values = r.alive
    assert values[0] == 2 and values[-1] == 1
    # the idle replica (its request ended at 5.5 s) is the one stopped at 10 s
    assert times[list(values).index(1)] == pytest.approx(10.0)


def test_a_starting_replica_is_cancelled_first() -> None:
    tr = trace([0.0], [1.0])
    policy = Script(((0.0, 3), (5.0, 1)))
    r = simulate(tr, policy, SimulationSettings(startup_time=60.0, tail=20.0))
    assert r.ready[1].max() == 1  # the two starting ones never became ready


def test_snapshots_carry_the_load_history_and_averages() -> None:
    tr = trace([30.0, 70.0, 75.0], [10.0, 10.0, 10.0])
    policy = Script(((0.0, 1),), interval=60.0)
    settings = SimulationSettings(tail=60.0)
    from prsm.performance.sim._engine import simulate as run

    seen: list[ScalingContext] = []
    run(tr, Spy(policy.schedule, 60.0, seen=seen), settings)
    first, second = seen[0], seen[1]
    assert first.now == 60.0 and first.arrivals == 1 and first.load is not None
    assert first.load.values.tolist() == [1.0]
    assert first.mean_busy == pytest.approx(10.0 / 60.0)
    assert second.load is not None and second.load.values.tolist() == [1.0, 2.0]
    assert second.service_time == pytest.approx(10.0)


def test_the_oracle_never_queues_below_its_cap() -> None:
    rng = np.random.default_rng(3)
    times = np.sort(rng.uniform(600, 4200, 400))  # room to start replicas before the first
    tr = Trace("random", times, rng.uniform(5, 60, 400))
    settings = SimulationSettings(startup_time=120.0, slo=1.0, max_replicas=50)
    oracle = OraclePolicy.for_trace(tr, startup_time=120.0, max_replicas=50)
    r = simulate(tr, oracle, settings)
    assert r.summary()["violation_minutes"] == 0
    hpa = simulate(tr, HPAPolicy(HPASettings(target_value=1.0, max_replicas=50)), settings)
    assert hpa.summary()["violation_minutes"] > 0


def test_busy_per_second() -> None:
    tr = trace([0.0, 0.5, 3.0], [2.0, 1.0, 1.0])
    # [0, 2) and [0.5, 1.5) overlap in seconds 0 and 1; [3, 4) in second 3
    assert busy_per_second(tr).tolist()[:4] == [2.0, 2.0, 0.0, 1.0]


def test_minutes_table_and_violation_minutes() -> None:
    tr = trace([0.0, 0.0, 65.0, 70.0], [40.0, 40.0, 50.0, 50.0])
    r = simulate(tr, Script(((0.0, 1),)), SimulationSettings(slo=30.0, tail=120.0))
    m = r.minutes(0.0, 180.0)
    assert m["arrivals"].tolist() == [2.0, 2.0, 0.0]
    assert m["violations"].tolist() == [1.0, 1.0, 0.0]
    assert m["replicas"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert r.summary(0.0, 180.0)["violation_minutes"] == 2


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError) as err:
        SimulationSettings(initial_replicas=5, max_replicas=2)
    assert err.value.field in ("initial_replicas", "min_replicas")
    with pytest.raises(ConfigError, match="no service times"):
        simulate(Trace("x", np.zeros(1), None), Script(((0.0, 1),)))


def test_snapshots_carry_the_users_sessions_fed_before_the_start_too() -> None:
    times = [10.0, 20.0, 100.0, 130.0]
    tr = Trace(
        "users",
        np.asarray(times),
        np.full(4, 5.0),
        users=np.asarray([7, 8, 7, 9], dtype=np.int64),
    )
    seen: list[ScalingContext] = []
    spy = Spy(((0.0, 1),), 60.0, seen=seen)
    simulate(tr, spy, SimulationSettings(start=50.0, tail=60.0))
    first = seen[0]  # at 110: users 7 (last at 100, its 2nd request) and 8 (last at 20)
    assert first.now == 110.0 and first.sessions is not None
    assert sorted(first.sessions.open) == [(10.0, 2), (90.0, 1)]
    assert first.sessions.new_sessions == 2
    assert sorted(seen[1].sessions.open if seen[1].sessions else ()) == [
        (40.0, 1),
        (70.0, 2),
        (150.0, 1),
    ]
    plain = Trace("no users", np.asarray(times), np.full(4, 5.0))
    seen.clear()
    simulate(plain, spy, SimulationSettings(start=50.0, tail=60.0))
    assert seen[0].sessions is None
