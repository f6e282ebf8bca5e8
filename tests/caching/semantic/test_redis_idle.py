"""The semantic cache's Redis store closes its pooled connections once idle for
``redis_idle_timeout``, also when traffic stops, and the next write reconnects (a real
``redis-server``, connections counted by the server, a manual clock)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from redis.asyncio import Redis

from prsm.performance.caching.semantic import RedisStore, SemanticSettings
from prsm.performance.caching.semantic._store import Entry
from prsm.performance.clock import ManualClock
from prsm.performance.errors import ConfigError
from tests.caching.test_redis_idle_timeout import reaper_passes, server_connections
from tests.conftest import RedisServer

pytestmark = pytest.mark.integration


def _entry(key: int) -> Entry:
    vector = np.ones(4, dtype=np.float32)
    return Entry(key=key, namespace="t", query=f"q{key}", result={"a": key}, vector=vector,
                 created=0.0)  # fmt: skip


async def test_idle_connections_close_and_the_next_write_reconnects(
    own_redis: RedisServer, clock: ManualClock
) -> None:
    store = RedisStore(own_redis.url, prefix="idle", dim=4, idle_timeout=60.0, clock=clock)
    counter = Redis.from_url(own_redis.url)
    try:
        assert await store.load(clock.time()) == []  # starts the reaper
        await asyncio.gather(*(store.put(_entry(k)) for k in range(6)))  # a burst
        assert await server_connections(counter) == 6
        clock.advance(30.0)
        await reaper_passes(store.reaper, counter, 1)
        assert await server_connections(counter) == 6  # idle 30 s of 60: kept
        clock.advance(30.0)  # nothing more comes
        await reaper_passes(store.reaper, counter, 2)
        assert await server_connections(counter, expect=0) == 0
        await store.put(_entry(7))  # reconnects transparently
        assert len(await store.load(clock.time())) == 7
    finally:
        await store.aclose()
        await counter.aclose()
    assert store.reaper.passes == 2  # stopped with the store


def test_the_setting_is_validated() -> None:
    with pytest.raises(ConfigError) as info:
        SemanticSettings(redis_idle_timeout=0)
    assert info.value.field == "redis_idle_timeout"
