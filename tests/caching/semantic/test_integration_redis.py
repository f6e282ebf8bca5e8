"""Two semantic caches on one real Redis stay in step through the stream; a new one rebuilds."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from prsm.performance.caching.semantic import RedisStore, SemanticCache, SemanticSettings
from prsm.performance.embeddings._embedder import HashingEmbedder
from tests.conftest import RedisServer

pytestmark = pytest.mark.integration

FRANCE = "What is the capital of France?"


async def eventually(check: object, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_caches_share_entries_through_redis(redis_server: RedisServer) -> None:
    client = aioredis.from_url(redis_server.url)
    await client.flushall()
    await client.aclose()
    settings = SemanticSettings(verifier=False, redis_url=redis_server.url, redis_prefix="t1")
    a = SemanticCache(settings, embedder=HashingEmbedder())
    b = SemanticCache(settings, embedder=HashingEmbedder())
    await a.start()
    await b.start()
    assert isinstance(a.store, RedisStore)
    await a.cache_result(FRANCE, {"answer": "Paris"}, "acme/m")

    async def b_sees_it() -> bool:
        return await b.get_similar(FRANCE, "acme/m") is not None

    await eventually(b_sees_it)
    assert await b.get_similar(FRANCE, "other/m") is None  # namespaces hold across processes

    # a process started later rebuilds its index from Redis
    c = SemanticCache(settings, embedder=HashingEmbedder())
    hit = await c.get_similar(FRANCE, "acme/m")
    assert hit is not None and hit.result == {"answer": "Paris"}
    assert hit.original_query == FRANCE

    # deletions travel too
    assert await a.invalidate("acme/m") == 1

    async def b_forgot() -> bool:
        return await b.get_similar(FRANCE, "acme/m") is None

    await eventually(b_forgot)
    d = SemanticCache(settings, embedder=HashingEmbedder())
    assert await d.get_similar(FRANCE, "acme/m") is None
    for cache in (a, b, c, d):
        await cache.aclose()
