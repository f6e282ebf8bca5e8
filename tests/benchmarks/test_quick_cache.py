"""The cache benchmark runs (``--quick``: it checks that it runs, not its figures)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .quick import need, run_quick


@pytest.mark.slow
def test_cache_benchmark_quick(tmp_path: Path) -> None:
    need("cachetools", "aiocache", extra="bench")
    data = run_quick("cache", tmp_path)
    cases = {row["case"] for row in data["rows"]}
    assert {"L1 get (hit), TTL on", "L1 set (evicting)", "L3 CAS get via MultiTierCache"} <= cases
    assert "l1_get_vs_cachetools" in data["ratio_vs_peer"]
    assert "l1_hit" in data["meets_goal"]
    if shutil.which("redis-server") is not None:
        assert "L2 Redis get via MultiTierCache, bytes value" in cases
        assert "l2_hit" in data["meets_goal"]
    assert all(row["ours_us"] > 0 for row in data["rows"])
