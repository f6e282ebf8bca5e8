"""The routing benchmark runs (``--quick``: it checks that it runs, not its figures)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.mark.slow
def test_routing_benchmark_quick(tmp_path: Path) -> None:
    if importlib.util.find_spec("litellm") is None:
        if IN_CI:
            pytest.fail("litellm (the 'bench' extra) is not installed, and CI=true requires it")
        pytest.skip("litellm is not installed: pip install -e '.[bench]'")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.routing", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "routing.quick.json").read_text())
    assert data["name"] == "routing" and data["quick"] is True
    impls = {row["implementation"] for row in data["rows"]}
    assert {"ours (intelligent)", "litellm simple-shuffle", "ours handle()"} <= impls
    assert set(data["ratio_vs_peer"]) == {"route@10", "handle@10"}
    assert all(row["median_us"] > 0 for row in data["rows"])
