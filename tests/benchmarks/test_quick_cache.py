"""The cache benchmark runs (``--quick``: it checks that it runs, not its figures)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.mark.slow
def test_cache_benchmark_quick(tmp_path: Path) -> None:
    for module in ("cachetools", "aiocache"):
        if importlib.util.find_spec(module) is None:
            if IN_CI:
                pytest.fail(
                    f"{module} (the 'bench' extra) is not installed, and CI=true requires it"
                )
            pytest.skip(f"{module} is not installed: pip install -e '.[bench]'")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.cache", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "cache.quick.json").read_text())
    assert data["name"] == "cache" and data["quick"] is True
    cases = {row["case"] for row in data["rows"]}
    assert {"L1 get (hit), TTL on", "L1 set (evicting)", "L3 CAS get via MultiTierCache"} <= cases
    assert "l1_get_vs_cachetools" in data["ratio_vs_peer"]
    assert "l1_hit" in data["meets_goal"]
    if shutil.which("redis-server") is not None:
        assert "L2 Redis get via MultiTierCache, bytes value" in cases
        assert "l2_hit" in data["meets_goal"]
    assert all(row["ours_us"] > 0 for row in data["rows"])
