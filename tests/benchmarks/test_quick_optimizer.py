"""The optimizer benchmark runs (``--quick``: it checks that it runs, not its figures)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .quick import ROOT, need, run_quick


@pytest.mark.slow
def test_optimizer_benchmark_quick(tmp_path: Path) -> None:
    need("ortools", "matplotlib", extra="optimize")
    # this checkout's sources first (the venv may hold another checkout's package)
    path = os.pathsep.join([str(ROOT), str(ROOT / "src")])
    data = run_quick("optimizer", tmp_path, "--plot", env={"PYTHONPATH": path})
    solvers = {row["solver"] for row in data["rows"]}
    assert {"greedy", "LP bound", "ours", "highs", "cp-sat", "scipy"} <= solvers
    ours = [row for row in data["rows"] if row["solver"] == "ours"]
    assert all(row["gap"] is not None and row["gap"] >= 0 for row in ours)
    assert set(data["meets_goal"]) and "load_average" in data
    assert (tmp_path / "optimizer.quick.png").read_bytes()[:4] == b"\x89PNG"
