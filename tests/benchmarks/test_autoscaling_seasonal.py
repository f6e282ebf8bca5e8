"""The seasonal study's rule on a hand-made trace: the fewest violation minutes among ours and
ours + each seasonal point within the HPA's replica-hours on the fitting period, and the
report period run (HPA and the choice) only for a choice that is not ours."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import _autoscaling_seasonal as study
from prsm.performance.sim import Scenario, SimulationSettings, Trace


def _scenarios() -> tuple[Scenario, Scenario]:
    """Sparse requests, and every hour a batch of 6 at :10 (an "hour" is the floor's day)."""
    rng = np.random.default_rng(5)
    times = np.sort(
        np.concatenate([rng.uniform(0, 7 * 3600, 300), np.repeat(np.arange(7) * 3600 + 600, 6)])
    )
    trace = Trace("hand", times, rng.uniform(5, 40, len(times)))
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
    hourly = {"seasonal.period": 3600.0, "seasonal.width": 600.0, "seasonal.days": 2}
    grid = [
        {**hourly, "seasonal_share": 1.0, "seasonal.span": 0.0},
        {**hourly, "seasonal_share": 0.5, "session_wait_probability": 0.3},
    ]
    monkeypatch.setattr(study, "SEASONAL_GRID", grid)
    main, fit = _scenarios()
    ours = {"interval": 10.0, "scale_down_window": 0.0}
    out = study.seasonal_study(main, fit, ours)
    hpa, *tried = out["fitting_period"]
    assert hpa["policy"] == "hpa"
    assert [t["policy"] for t in tried] == ["ours", "ours + seasonal", "ours + seasonal"]
    assert tried[1]["seasonal_share"] == 1.0 and tried[1]["seasonal.span"] == 0.0
    within = [t for t in tried if t["replica_hours"] <= hpa["replica_hours"]]
    best = min(within or tried, key=lambda t: (t["violation_minutes"], t["replica_hours"]))
    assert out["chosen"] == best["policy"]
    # the floor meets the batches ours alone meets late
    assert tried[1]["violation_minutes"] < tried[0]["violation_minutes"]
    assert ("report_period" in out) == (best["policy"] != "ours")
    if best["policy"] != "ours":
        peer, row = out["report_period"]
        assert peer["policy"] == "hpa"
        assert row["seasonal_share"] == best["seasonal_share"]
