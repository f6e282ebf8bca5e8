"""``--jobs``: the benchmark's simulations run in several processes give the same results, in
the same order, as run one after another (virtual time)."""

from __future__ import annotations

import numpy as np
from benchmarks._autoscaling_runs import simulate_all

from prsm.performance.sim import Scenario, SimulationSettings, Trace


def _scenario() -> Scenario:
    rng = np.random.default_rng(3)
    times = np.sort(rng.uniform(0, 3 * 3600, 600))
    trace = Trace("hand", times, rng.uniform(5, 60, len(times)))
    settings = SimulationSettings(startup_time=120.0, slo=30.0, end=3 * 3600.0)
    return Scenario(trace, settings, report_start=3600.0)


def test_parallel_runs_match_sequential_ones_in_order() -> None:
    scenario = _scenario()
    runs = [
        ("hpa", None),
        ("predictive", {"interval": 5.0, "scale_down_window": 0.0}),
        ("predictive", {"interval": 15.0}),
    ]
    one = simulate_all(scenario, runs, 1)
    two = simulate_all(scenario, runs, 2)
    assert [r.policy for r in two] == ["hpa", "predictive", "predictive"]
    for a, b in zip(one, two, strict=True):
        assert a.parameters == b.parameters
        assert np.array_equal(a.waits, b.waits, equal_nan=True)
        assert a.summary(3600.0, None) == b.summary(3600.0, None)
    # the two settings of ours differ (the runs are not all the same simulation)
    assert one[1].parameters["interval"] == 5.0 and one[2].parameters["interval"] == 15.0
