"""The semantic benchmark runs (``--quick``: a few hundred QQP pairs, small index sizes)."""

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
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.mark.slow
@pytest.mark.integration
def test_semantic_benchmark_quick(tmp_path: Path) -> None:
    for module in ("sentence_transformers", "usearch", "faiss"):
        if importlib.util.find_spec(module) is None:
            if IN_CI:
                pytest.fail(f"{module} (the 'embeddings' extra) is missing, and CI=true needs it")
            pytest.skip(f"{module} is not installed: pip install -e '.[embeddings,bench]'")
    if not DATA.is_file():
        pytest.skip(f"{DATA} (the shared QQP data) is not present")
    args = ["--quick", "--out", str(tmp_path)]
    if importlib.util.find_spec("gptcache") is None:
        args.append("--skip-gptcache")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.semantic", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "semantic.quick.json").read_text())
    assert data["name"] == "semantic" and data["quick"] is True
    sections = {row["section"] for row in data["rows"]}
    assert {"qqp-test", "latency", "near-miss", "adaptive", "index"} <= sections
    assert set(data["meets_goal"]) >= {"f1_0_70", "index_recall_0_99"}
