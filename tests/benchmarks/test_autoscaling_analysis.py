"""The autoscaling benchmark's violation analysis on hand-made traces: a cron-like hour is
told from a flat one, and violation minutes are grouped into episodes."""

from __future__ import annotations

import numpy as np
import pytest
from benchmarks._autoscaling_analysis import (
    burst_predictability,
    episodes,
    periodicity,
    session_features,
)

from prsm.performance.scaling import ScalingContext, ScalingDecision
from prsm.performance.sim import SimulationSettings, Trace, simulate


def test_periodicity_tells_a_cron_hour_from_a_flat_one() -> None:
    rng = np.random.default_rng(3)
    flat = np.sort(rng.uniform(0, 48 * 3600, 400))
    # a job at minute 7 of every hour: one request, then three more within 30 s
    hours = np.arange(48) * 3600.0 + 7 * 60
    cron = np.sort(np.concatenate([flat, hours, hours + 10, hours + 20, hours + 30]))
    calm = periodicity(flat, 0.0, 48 * 3600)
    jobs = periodicity(cron, 0.0, 48 * 3600)
    assert calm["arrivals"] == 400 and jobs["arrivals"] == 400 + 4 * 48
    assert jobs["bursts_by_5_minutes_of_hour"][1] >= 30  # minute 7 lies in the second bin
    assert jobs["bursts_flat_hour_chi2_p"] < 1e-6
    assert calm["arrivals_flat_hour_chi2_p"] > 1e-3
    # the epoch shifts the minute of the hour: at 02:55 the jobs land at minute 2
    shifted = periodicity(cron, 0.0, 48 * 3600, epoch=55 * 60.0)
    assert shifted["bursts_by_5_minutes_of_hour"][0] >= 30


class _One:
    """Holds one replica whatever comes."""

    name = "one"
    interval = 15.0

    def initial_state(self) -> None:
        return None

    def parameters(self) -> dict[str, object]:
        return {}

    def decide(self, ctx: ScalingContext, state: None) -> tuple[ScalingDecision, None]:
        return ScalingDecision.relative(1, ctx.target_replicas), None


def test_episodes_group_violation_minutes_and_say_what_came_before() -> None:
    # a quiet first hour, then two bursts of five 100 s requests on one replica, an hour apart
    burst = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    times = np.concatenate([[10.0], 3600 + burst, 7200 + burst])
    trace = Trace("hand", times, np.full(len(times), 100.0))
    s = SimulationSettings(startup_time=120.0, slo=30.0, max_replicas=1, end=3 * 3600.0)
    result = simulate(trace, _One(), s)
    got = episodes(result, 0.0, 3 * 3600.0)
    # each burst's last four requests wait > 30 s; they all arrived in its first minute
    assert got["violation_minutes"] == 2 and got["episodes"] == 2
    assert got["episodes_by_violation_minutes"] == {"1": 2}
    assert got["share_of_violation_minutes_on_one_ready_replica"] == 1.0
    assert got["share_after_a_quiet_10_min"] == 1.0
    assert got["arrivals_in_first_3_min_median"] == 5.0
    assert episodes(result, 0.0, 3000.0) == {"violation_minutes": 0, "episodes": 0}


def test_burst_predictability_finds_a_daily_burst_and_not_a_random_one() -> None:
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(5)
    days = np.arange(8) * 86400.0
    daily = np.sort(np.concatenate([days + 12 * 3600 + k * 5.0 for k in range(10)]))
    noise = np.sort(rng.uniform(0, 8 * 86400, 80))
    fit, test = (0.0, 5 * 86400.0), (5 * 86400.0, 8 * 86400.0 - 600)
    for times, low, high in ((daily, 0.9, 1.0), (noise, 0.0, 0.75)):
        got = burst_predictability(times, np.full(len(times), 60.0), fit, test)
        assert 0 < got["base_rate_test"] < 0.1
        assert low <= got["roc_auc_test"] <= high, got


def test_session_features_score_each_feature_set_on_the_held_out_span() -> None:
    """A user sending every 60 s (10 s each) brings exactly 2 requests into every
    ``[t + 90, t + 210)``: each feature set's table, fitted on the first half, forecasts the
    second without error; a user who comes only after the span adds no session."""
    steady = np.arange(0.0, 36_000.0, 60.0)
    times = np.concatenate([steady, [50_000.0]])
    users = np.concatenate([np.zeros(len(steady), dtype=np.int64), [1]])
    order = np.argsort(times, kind="stable")
    out = session_features(
        times[order], np.full(len(times), 10.0), users[order], (0.0, 18_000.0), (18_000.0, 36_000.0)
    )
    for name in ("rank+quiet", "+in service/ended", "+previous gap"):
        assert out[name] == {"mse_per_session": 0.0, "mse_of_the_sum": 0.0}, name
    # user 0's grid points up to the end of the held-out span less the window
    assert out["sessions_x_times"] == len(np.arange(0.0, 36_000.0 - 210.0, 10.0))
