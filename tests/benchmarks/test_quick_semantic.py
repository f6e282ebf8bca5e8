"""The semantic benchmark runs (``--quick``: a few hundred QQP pairs, small index sizes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .quick import QQP_DEV, need, need_file, run_quick


@pytest.mark.slow
@pytest.mark.integration
def test_semantic_benchmark_quick(tmp_path: Path) -> None:
    need("sentence_transformers", "usearch", extra="embeddings")
    need("faiss", "gptcache", extra="bench")
    need_file(QQP_DEV)
    data = run_quick("semantic", tmp_path)
    sections = {row["section"] for row in data["rows"]}
    assert {"qqp-test", "latency", "label-audit", "label-ceiling"} <= sections
    assert {"near-miss", "adaptive", "index"} <= sections
    assert set(data["meets_goal"]) >= {"f1_0_70", "index_recall_0_99"}
