"""``benchmarks/monitoring.py --quick`` runs (recording, the history stores, the gateway peak
with monitoring on and off)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.benchmarks.quick import ROOT, need, run_quick

pytestmark = pytest.mark.integration


def test_quick_monitoring(tmp_path: Path) -> None:
    need("duckdb", "pandas", extra="bench")
    sources = f"{ROOT}{os.pathsep}{ROOT / 'src'}"  # this checkout's package, not an installed one
    data = run_quick("monitoring", tmp_path, "--duration", "0.5", env={"PYTHONPATH": sources})
    parts = {row["part"] for row in data["rows"]}
    assert parts == {"record", "store", "peak"}
    assert set(data["meets_goal"]) == {"record", "week_query", "peak_drop"}
    assert data["stores"]["sqlite"]["week_points"] > 0
    # the open dashboard loaded the page, its files and each chart's history
    assert data["peak"]["dashboard_opening_requests"] > 20
    # ... and the findings, as the page does when it opens (and every minute after)
    assert data["peak"]["dashboard_analyses"] >= 1
    # the drop several ways: the rounds' (CPU per request, judged; req/s), of the medians,
    # added up from its parts
    keys = ("drop", "drop_req_s", "drop_median", "drop_of_medians", "drop_from_cpu")
    for key in (*keys, "drop_from_parts"):
        assert key in data["peak"]
    # rounds of four measurements (ABBA): two of each mode a round; the judged drop's interval
    assert data["peak"]["order"] == "ABBA"
    assert len(data["peak"]["rounds"]["on"]) == 2 * len(data["peak"]["round_drops"]["cpu"])
    assert len(data["peak"]["drop_ci95"]) == 2
    assert data["peak"]["idle_cpu_per_s"]["on"] > 0
