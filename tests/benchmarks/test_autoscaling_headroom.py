"""The headroom study's rule on a hand-made trace: the fewest violation minutes among ours and
ours + each headroom point within the HPA's replica-hours on the fitting period, and the
report period run only for a choice that is not ours."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import _autoscaling_headroom as study
from prsm.performance.sim import Scenario, SimulationSettings, Trace


def _scenarios() -> tuple[Scenario, Scenario]:
    rng = np.random.default_rng(5)
    times = np.sort(rng.uniform(0, 6 * 3600, 900))
    users = rng.integers(0, 12, len(times))
    trace = Trace("hand", times, rng.uniform(5, 60, len(times)), users=users)
    fit = Scenario(
        trace,
        SimulationSettings(startup_time=120.0, slo=30.0, end=4 * 3600.0),
        report_start=3600.0,
        report_end=4 * 3600.0,
    )
    main = Scenario(
        trace, SimulationSettings(startup_time=120.0, slo=30.0, start=3 * 3600.0), 4 * 3600.0
    )
    return main, fit


def test_the_rule_keeps_to_the_hpa_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    grid = [
        {"session_error_quantile": 0.9, "session_wait_probability": 0.01},
        {"session_error_quantile": 0.6, "session_wait_probability": 0.3},
    ]
    monkeypatch.setattr(study, "HEADROOM_GRID", grid)
    main, fit = _scenarios()
    ours = {"interval": 10.0, "scale_down_window": 0.0, "session_wait_probability": 0.1}
    out = study.headroom_study(main, fit, ours)
    hpa, *tried = out["fitting_period"]
    assert hpa["policy"] == "hpa" and [t["policy"] for t in tried] == [
        "ours",
        "ours + headroom",
        "ours + headroom",
    ]
    within = [t for t in tried if t["replica_hours"] <= hpa["replica_hours"]]
    best = min(within or tried, key=lambda t: (t["violation_minutes"], t["replica_hours"]))
    assert out["chosen"] == best["policy"]
    assert ("report_period" in out) == (best["policy"] != "ours")
    if best["policy"] != "ours":
        (row,) = out["report_period"]
        assert row["session_error_quantile"] == best["session_error_quantile"]
