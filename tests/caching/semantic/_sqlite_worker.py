"""One gateway-like process for test_sqlite_shared: writes entries to a shared data directory,
then waits until its index holds every process's entries (it follows the others)."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from prsm.performance.caching.semantic import SemanticCache, SemanticSettings
from prsm.performance.embeddings._embedder import HashingEmbedder


async def main(data_dir: str, me: int, per: int, total: int) -> None:
    settings = SemanticSettings(verifier=False, data_dir=data_dir)
    cache = SemanticCache(settings, embedder=HashingEmbedder())
    await cache.start()
    for i in range(per):
        await cache.cache_result(f"process {me} asks question {i} about rivers", [me, i], "shared")
    deadline = time.monotonic() + 60
    while len(cache) < total and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)  # the store's follower fills the index meanwhile
    hit = await cache.get_similar(f"process {(me + 1) % 3} asks question 0 about rivers", "shared")
    print(len(cache), json.dumps(hit["result"] if hit else None, separators=(",", ":")), flush=True)
    await cache.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
