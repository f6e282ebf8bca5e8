"""The simulator runs the library's burst quantiles (``make_policy`` passes ``burst.X``): a
request that heralds a batch a few minutes later is learned from the history, and replicas
are ready when the batch comes."""

from __future__ import annotations

import numpy as np
import pytest

from prsm.performance.errors import ConfigError
from prsm.performance.scaling import PredictivePolicy
from prsm.performance.sim import Scenario, SimulationSettings, Trace, make_policy, run_policies

HOURS = 12


def _heralded() -> Trace:
    """Every hour: one request at :10:05, then a batch of 8 at once 150 s later; 25 s each."""
    times: list[float] = []
    for h in range(HOURS):
        herald = h * 3600.0 + 605.0
        times += [herald, *([herald + 150.0] * 8)]
    return Trace("heralded", np.asarray(times), np.full(len(times), 25.0))


SCENARIO = Scenario(_heralded(), SimulationSettings(startup_time=120.0, slo=30.0))
BURST = {
    "burst_quantile": 0.9,
    "burst.short": 120.0,
    "burst.long": 600.0,
    "burst.min_samples": 2,
    "scale_down_window": 0.0,
}


def test_make_policy_passes_the_burst_settings_and_names_unknown_ones() -> None:
    policy = make_policy("predictive", SCENARIO, BURST)
    assert isinstance(policy, PredictivePolicy)
    assert policy.settings.burst_quantile == 0.9
    assert policy.settings.burst.long == 600.0 and policy.settings.burst.min_samples == 2
    with pytest.raises(ConfigError, match=r"burst\.nope"):
        make_policy("predictive", SCENARIO, {"burst.nope": 1})
    with pytest.raises(ConfigError, match=r"predictive\.other\.x"):
        make_policy("predictive", SCENARIO, {"other.x": 1})


def test_the_burst_floor_has_replicas_ready_for_the_heralded_batch() -> None:
    plain = {"scale_down_window": 0.0}
    res = run_policies(SCENARIO, ["predictive"], params={"predictive": plain})["predictive"]
    without = res.summary(3 * 3600.0, HOURS * 3600.0)
    res = run_policies(SCENARIO, ["predictive"], params={"predictive": BURST})["predictive"]
    with_burst = res.summary(3 * 3600.0, HOURS * 3600.0)
    # without it, one replica meets each batch of 8: every hour has a violation minute
    assert without["violation_minutes"] == HOURS - 3
    # with it, the herald (once learned) brings replicas up in time for the batch
    assert with_burst["violation_minutes"] == 0
    assert with_burst["replica_hours"] > without["replica_hours"]


def test_the_seasonal_floor_has_replicas_ready_for_the_batch_that_comes_every_day() -> None:
    """A "day" of 3 hours: a batch of 8 at once at :10:05 of its first hour, nothing
    heralds it; from the second day on, the floor has replicas ready (``seasonal.X`` keys)."""
    times: list[float] = []
    for day in range(4):
        times += [day * 3 * 3600.0 + 605.0] * 8
    trace = Trace("daily", np.asarray(times), np.full(len(times), 25.0))
    scenario = Scenario(trace, SimulationSettings(startup_time=120.0, slo=30.0))
    seasonal = {
        "seasonal_share": 1.0,
        "seasonal.period": 3 * 3600.0,
        "seasonal.days": 2,
        "seasonal.span": 0.0,
        "scale_down_window": 0.0,
    }
    policy = make_policy("predictive", scenario, seasonal)
    assert isinstance(policy, PredictivePolicy)
    assert policy.settings.seasonal.period == 3 * 3600.0 and policy.settings.seasonal.span == 0
    plain = {"scale_down_window": 0.0}
    runs = run_policies(scenario, ["predictive"], params={"predictive": plain})[
        "predictive"
    ].summary(3 * 3600.0, 12 * 3600.0)
    floor = run_policies(scenario, ["predictive"], params={"predictive": seasonal})[
        "predictive"
    ].summary(3 * 3600.0, 12 * 3600.0)
    assert runs["violation_minutes"] == 3  # each later day's batch meets one replica
    assert floor["violation_minutes"] == 0  # 8 / (1 + 30 / 25) → 4 ready in time
    assert floor["replica_hours"] > runs["replica_hours"]
