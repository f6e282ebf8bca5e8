"""The seasonal study's rule on a hand-made trace: the fewest violation minutes among ours and
ours + each seasonal point within the HPA's replica-hours on the fitting period, and the
report period run (HPA and the choice) only for a choice that is not ours."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from benchmarks._autoscaling_runs import simulate_all

from benchmarks import _autoscaling_seasonal as study
from prsm.performance.sim import Scenario, SimulationResult, SimulationSettings, Trace


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


def test_known_figures_are_not_simulated_again(monkeypatch: pytest.MonkeyPatch) -> None:
    grid = [{"seasonal_share": 1.0, "seasonal.period": 3600.0, "seasonal.days": 2}]
    monkeypatch.setattr(study, "SEASONAL_GRID", grid)
    simulated: list[int] = []
    real = simulate_all

    def counted(
        sc: Scenario, runs: list[tuple[str, dict[str, Any] | None]], jobs: int
    ) -> list[SimulationResult]:
        simulated.append(len(runs))
        return real(sc, runs, jobs)

    monkeypatch.setattr(study, "simulate_all", counted)
    main, fit = _scenarios()
    known = {
        "hpa": {"replica_hours": 1000.0, "violation_minutes": 500},
        "ours": {"replica_hours": 999.0, "violation_minutes": 400},
        "hpa_report": {"replica_hours": 7.0, "violation_minutes": 9},
    }
    out = study.seasonal_study(main, fit, {"interval": 10.0}, known=known)
    hpa, ours, point = out["fitting_period"]
    assert point["policy"] == "ours + seasonal" and point["seasonal_share"] == 1.0
    assert hpa == {"policy": "hpa", **known["hpa"]} and ours == {"policy": "ours", **known["ours"]}
    assert out["chosen"] == "ours + seasonal"  # within 1000 h, fewer than 400 minutes
    assert out["report_period"][0] == {"policy": "hpa", **known["hpa_report"]}
    assert simulated == [1, 1]  # the grid point on each period; nothing known is re-run
    assert set(out["known"]) == set(known)


def test_known_figures_come_from_a_full_runs_json(tmp_path: Path) -> None:
    from benchmarks._autoscaling_setup import TUNED
    from benchmarks.autoscaling import _known_alibaba

    tuned = TUNED["alibaba"]
    data = {
        "ours": {"alibaba": {**tuned, "burst_quantile": None}},
        "tuning": {
            "alibaba": [
                {"budget_replica_hours": 2.0},
                {"policy": "hpa", "replica_hours": 2.0, "violation_minutes": 5},
                {**tuned, "replica_hours": 1.5, "violation_minutes": 3},
                {**tuned, "interval": 99.0, "replica_hours": 1.0, "violation_minutes": 1},
            ]
        },
        "rows": [
            {"scenario": "twitter", "policy": "hpa", "replica_hours": 8, "violation_minutes": 8},
            {"scenario": "alibaba", "policy": "hpa", "replica_hours": 3, "violation_minutes": 4},
        ],
    }
    path = tmp_path / "autoscaling.json"
    path.write_text(json.dumps(data))
    assert _known_alibaba(path) == {
        "hpa": {"replica_hours": 2.0, "violation_minutes": 5},
        "ours": {"replica_hours": 1.5, "violation_minutes": 3},
        "hpa_report": {"replica_hours": 3, "violation_minutes": 4},
    }
    data["ours"] = {"alibaba": {**tuned, "interval": 99.0}}  # a run of another ours
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="as tuned"):
        _known_alibaba(path)
