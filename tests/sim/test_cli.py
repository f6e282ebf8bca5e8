"""``prsm-perf simulate`` end to end on a small trace: table, JSON, plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prsm.performance.cli import main


def test_simulate_compares_policies_and_writes_json_and_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    trace = tmp_path / "per_minute.csv"
    counts = [0] * 30 + [40] * 20 + [5] * 30 + [60] * 10 + [0] * 30
    trace.write_text("minute,requests\n" + "".join(f"{i},{c}\n" for i, c in enumerate(counts)))
    out = tmp_path / "sim.json"
    png = tmp_path / "sim.png"
    code = main([
        "simulate", "--trace", str(trace), "--policy", "hpa,kpa", "--policy", "oracle",
        "--service-mean", "5", "--startup", "30", "--slo", "5", "--max-replicas", "10",
        "--set", "hpa.scale_down_stabilization=60", "--json", str(out), "--plot", str(png),
        "--quiet",
    ])  # fmt: skip
    assert code == 0
    doc = json.loads(out.read_text())
    assert [r["policy"] for r in doc["rows"]] == ["hpa", "kpa", "oracle"]
    assert doc["parameters"]["hpa"]["scale_down_stabilization"] == 60.0
    assert doc["rows"][2]["violation_minutes"] <= doc["rows"][0]["violation_minutes"]
    assert png.stat().st_size > 10_000
    assert "replica_hours" in capsys.readouterr().out


def test_simulate_rejects_an_unknown_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("minute,requests\n0,1\n")
    assert main(["simulate", "--trace", str(trace), "--policy", "magic"]) == 2
    assert "unknown policy 'magic'" in capsys.readouterr().err
