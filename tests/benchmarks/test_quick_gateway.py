"""The gateway benchmark runs (``--quick``: it checks that it runs, not its figures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.integration
def test_gateway_benchmark_quick(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gateway", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "gateway.quick.json").read_text())
    assert data["name"] == "gateway" and data["quick"] is True
    targets = {(row["target"], row["mode"]) for row in data["rows"]}
    assert targets == {(t, m) for t in ("direct", "prsm") for m in ("non-stream", "stream")}
    ours = next(r for r in data["rows"] if r["target"] == "prsm" and r["mode"] == "non-stream")
    assert ours["peak_rps"] > 0 and ours["errors"] == 0
    assert set(data["meets_goal"]) >= {"added_p50_le_1ms", "peak_ge_40pct_direct"}
