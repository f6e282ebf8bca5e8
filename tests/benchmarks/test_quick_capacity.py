"""The capacity benchmark runs (``--quick``: it checks that it runs, not its figures)."""

from __future__ import annotations

from pathlib import Path

from .quick import run_quick


def test_capacity_benchmark_quick(tmp_path: Path) -> None:
    data = run_quick("capacity", tmp_path, "--plot")
    assert [r["concurrency"] for r in data["rows"]] == [1, 2, 4, 8]
    assert all(r["measured_rps"] > 0 and r["errors"] == 0 for r in data["rows"])
    assert data["usl"]["lambda"] > 0 and data["usl"]["samples"] == 4
    assert (tmp_path / "capacity.quick.png").stat().st_size > 0
