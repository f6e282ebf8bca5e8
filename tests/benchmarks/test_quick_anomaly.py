"""The anomaly benchmark runs (``--quick``: it checks that it runs, not its figures)."""

from __future__ import annotations

import os
from pathlib import Path

from .quick import ROOT, need_file, run_quick

NAB_WINDOWS = ROOT.parent / "shared" / "data" / "nab" / "labels" / "combined_windows.json"


def test_anomaly_benchmark_quick(tmp_path: Path) -> None:
    need_file(NAB_WINDOWS)
    # this checkout's sources first, whatever the virtualenv has installed
    src = f"{ROOT}{os.pathsep}{ROOT / 'src'}"
    data = run_quick("anomaly", tmp_path, "--plot", env={"PYTHONPATH": src})
    detectors = {row["detector"] for row in data["rows"]}
    assert "ours (AnomalyDetector)" in detectors
    assert "windowed Gaussian (ours, re-implemented)" in detectors
    assert "ARTime (published)" in detectors
    ours = data["rows"][0]
    assert 0 <= ours["std"] <= 100 and ours["us_per_point"] > 0
    assert set(data["ratio_vs_peer"]) == {"std", "low_FP", "low_FN"}
    assert (tmp_path / "anomaly.quick.png").stat().st_size > 0
