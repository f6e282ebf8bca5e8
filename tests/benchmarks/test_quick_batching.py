"""The batching benchmark runs (``--quick``: it checks that it runs, not its figures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .quick import QQP_DEV, need, need_file, run_quick


@pytest.mark.slow
@pytest.mark.integration
def test_batching_benchmark_quick(tmp_path: Path) -> None:
    need("sentence_transformers", extra="embeddings")
    need_file(QQP_DEV)
    data = run_quick("batching", tmp_path)
    cases = {(row["case"], row["clients"]) for row in data["rows"]}
    assert {("learned", 1), ("fixed-128", 8), ("unbatched (floor)", 1)} <= cases
    assert any(str(case).startswith("offline batch") for case, _ in cases)
    assert data["learned"]["curve"], "the tuner's measured curve is recorded"
    assert set(data["meets_goal"]) == {"90pct_of_limit_at_32", "1.3x_fixed128_at_128",
                                       "p99_bound_at_32"}  # fmt: skip
