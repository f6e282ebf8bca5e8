"""The batching benchmark runs (``--quick``: it checks that it runs, not its figures)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "qqp_pairs_dev.jsonl"


@pytest.mark.slow
@pytest.mark.integration
def test_batching_benchmark_quick(tmp_path: Path) -> None:
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers is not installed: pip install -e '.[embeddings]'")
    if not DATA.is_file():
        pytest.skip(f"{DATA} is missing (see ../shared/data/README.md)")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.batching", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "batching.quick.json").read_text())
    assert data["name"] == "batching" and data["quick"] is True
    cases = {(row["case"], row["clients"]) for row in data["rows"]}
    assert {("learned", 1), ("fixed-128", 8), ("unbatched (floor)", 1)} <= cases
    assert any(str(case).startswith("offline batch") for case, _ in cases)
    assert data["learned"]["curve"], "the tuner's measured curve is recorded"
    assert set(data["meets_goal"]) == {"90pct_of_limit_at_32", "1.3x_fixed128_at_128",
                                       "p99_bound_at_32"}  # fmt: skip
