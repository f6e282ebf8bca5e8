"""The autoscaling benchmark runs (``--quick``: short slices; it checks that it runs, not its
figures)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .quick import ROOT, need_file, run_quick

TRACES = ROOT.parent / "shared" / "data" / "traces"


@pytest.mark.slow
def test_autoscaling_benchmark_quick(tmp_path: Path) -> None:
    for name in (
        "alibaba_genai_lora_requests.csv",
        "twitter_requests_per_minute.csv",
        "azure_llm_2023_conv.csv",
    ):
        need_file(TRACES / name)
    # this checkout's sources first (the installed package may be another checkout's)
    src = f"{ROOT}{os.pathsep}{ROOT / 'src'}"
    data = run_quick("autoscaling", tmp_path, "--frontier", "--plot", env={"PYTHONPATH": src})
    got = {(row["scenario"], row["policy"]) for row in data["rows"]}
    for scenario in ("alibaba", "twitter", "azure"):
        assert {(scenario, p) for p in ("hpa", "kpa", "ray", "predictive", "oracle")} <= got
    frontier = data["report_frontier"]["alibaba"]
    assert {r["policy"] for r in frontier} == {"hpa", "predictive"}
    assert [r["scale_down_stabilization"] for r in frontier if r["policy"] == "hpa"] == [0.0, 60.0]
    assert (tmp_path / "autoscaling.quick-alibaba-report-frontier.png").stat().st_size > 0
    assert set(data["ratio_vs_peer"]) == {
        "violation_minutes_vs_best_peer",
        "replica_hours_vs_best_peer",
        "replica_hours_vs_oracle",
    }
    assert set(data["meets_goal"]) == {
        "violations_half_of_best_peer_at_no_more_hours",
        "hours_within_1.15x_oracle",
    }
    (shown,) = data["queue_share_variants"]  # the experiment, shown beside ours
    assert shown["variant"] == "ours + queue share 0, sessions 0.04"
    assert shown["reactive_queue_share"] == 0.0 and shown["replica_hours"] > 0
    params = data["scenarios"]["alibaba"]["policies"]
    assert params["hpa"]["scale_down_stabilization"] == 300.0
    assert params["oracle"]["look_ahead_s"] == 60.0
    assert all(row["replica_hours"] > 0 for row in data["rows"])
