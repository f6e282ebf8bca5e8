"""Several processes share one SQLite semantic store: no key is reused, no entry overwritten,
and each process's index follows the others' inserts (real processes, one data directory)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prsm.performance.caching.semantic import SemanticCache, SemanticSettings
from prsm.performance.embeddings._embedder import HashingEmbedder

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.integration
def test_processes_share_one_consistent_store(tmp_path: Path) -> None:
    procs, per = 3, 40
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.caching.semantic._sqlite_worker",
                str(tmp_path),
                str(p),
                str(per),
                str(procs * per),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(procs)
    ]
    outputs = []
    for w in workers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        outputs.append(out.split())
    for p, (seen, first) in enumerate(outputs):
        assert int(seen) == procs * per  # each process followed the others' inserts
        assert first == f"[{(p + 1) % procs},0]"  # and answers from another process's entry
    asyncio.run(_check(tmp_path, procs, per))


async def _check(tmp_path: Path, procs: int, per: int) -> None:
    cache = SemanticCache(
        SemanticSettings(verifier=False, data_dir=str(tmp_path)), embedder=HashingEmbedder()
    )
    await cache.start()
    assert len(cache) == procs * per  # nothing overwritten
    for p in range(procs):
        hit = await cache.get_similar(f"process {p} asks question 7 about rivers", "shared")
        assert hit is not None and hit.result == [p, 7]
    await cache.aclose()
