"""The Redis tier closes its pooled connections once idle for ``idle_timeout``, on its own
timer (also when traffic stops entirely), without touching a call in flight, and the next
command reconnects. Against a real ``redis-server``; the open connections are counted by the
server (``CLIENT LIST``); time is a manual clock."""

from __future__ import annotations

import asyncio
import math

import pytest
from redis.asyncio import Redis

from prsm.performance.caching import CacheSettings, RedisTier
from prsm.performance.caching.tiers._redis_idle import IdleReaper
from prsm.performance.clock import ManualClock
from prsm.performance.errors import CacheError, ConfigError
from tests.conftest import RedisServer

pytestmark = pytest.mark.integration

#: round trips to wait at most for Redis to see a close, or the reaper to make a pass
_TRIES = 500


async def server_connections(counter: Redis, expect: int | None = None) -> int:
    """The server's clients other than ``counter``'s own (waiting for ``expect`` if given)."""
    own = await counter.client_id()
    n = -1
    for _ in range(_TRIES):
        n = sum(1 for c in await counter.client_list() if int(c["id"]) != own)
        if expect is None or n == expect:
            break
    return n


async def _ids(counter: Redis) -> set[int]:
    own = await counter.client_id()
    return {int(c["id"]) for c in await counter.client_list()} - {own}


async def reaper_passes(reaper: IdleReaper, counter: Redis, passes: int) -> None:
    """Wait (in round trips, never in time) until ``reaper`` has made ``passes`` passes."""
    for _ in range(_TRIES):
        if reaper.passes >= passes:
            return
        await counter.ping()
    raise AssertionError(f"the reaper made {reaper.passes} passes, not {passes}")


@pytest.mark.parametrize("given", [False, True], ids=["built", "given-client"])
async def test_connections_close_once_idle_when_traffic_stops(
    own_redis: RedisServer, clock: ManualClock, given: bool
) -> None:
    """The tier's own pool notes releases itself; a client given to the tier is watched
    through redis-py's release event."""
    client = Redis.from_url(own_redis.url) if given else None
    url = None if given else own_redis.url
    tier = RedisTier(url, client=client, namespace="idle", idle_timeout=60.0, clock=clock)
    counter = Redis.from_url(own_redis.url)
    try:
        await asyncio.gather(*(tier.set(f"k{i}", b"v") for i in range(8)))  # a burst
        assert await server_connections(counter) == 8
        clock.advance(30.0)
        await reaper_passes(tier.reaper, counter, 1)
        assert await server_connections(counter) == 8  # idle 30 s of 60: kept
        blocked = asyncio.ensure_future(tier.client.blpop(["idle:list"], timeout=0))
        await server_connections(counter)  # BLPOP is on the server now
        clock.advance(30.0)
        await reaper_passes(tier.reaper, counter, 2)
        assert await server_connections(counter, expect=1) == 1  # all but the call in flight
        await counter.lpush("idle:list", b"x")
        assert tuple(await blocked) == (b"idle:list", b"x")  # not broken
        assert await tier.get("k1") == b"v"  # reuses the connection BLPOP released
        clock.advance(30.0)
        await reaper_passes(tier.reaper, counter, 3)
        assert await server_connections(counter) == 1  # idle 30 s: kept
        clock.advance(30.0)  # nothing more comes
        await reaper_passes(tier.reaper, counter, 4)
        assert await server_connections(counter, expect=0) == 0
        assert await tier.get("k2") == b"v"  # reconnects transparently
        assert await server_connections(counter) == 1
    finally:
        await tier.aclose()
        await counter.aclose()


async def test_a_bursts_extra_connections_close_while_the_warm_one_serves(
    own_redis: RedisServer, clock: ManualClock
) -> None:
    tier = RedisTier(own_redis.url, namespace="warm", idle_timeout=60.0, clock=clock)
    counter = Redis.from_url(own_redis.url)
    try:
        await asyncio.gather(*(tier.set(f"k{i}", b"v") for i in range(8)))
        burst = await _ids(counter)
        assert len(burst) == 8
        for _ in range(6):  # one GET every 10 s: the pool reuses the last released
            clock.advance(10.0)
            assert await tier.get("k0") == b"v"
        await reaper_passes(tier.reaper, counter, 2)  # the pass at 60 s
        assert await server_connections(counter, expect=1) == 1
        warm = await _ids(counter)
        assert warm < burst  # the same connection went on serving: never closed
    finally:
        await tier.aclose()
        await counter.aclose()


async def test_closing_the_tier_stops_its_reaper(
    own_redis: RedisServer, clock: ManualClock
) -> None:
    tier = RedisTier(own_redis.url, namespace="stop", idle_timeout=1.0, clock=clock)
    await tier.set("a", b"1")
    assert await tier.ping()  # a round trip: the reaper's task has started meanwhile
    assert clock.sleepers == 1
    await tier.aclose()
    assert clock.sleepers == 0


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, True, "60"])
def test_idle_timeout_is_validated(bad: object) -> None:
    with pytest.raises(CacheError, match="idle_timeout"):
        RedisTier("redis://127.0.0.1:1/0", idle_timeout=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="redis_idle_timeout"):
        CacheSettings(redis_idle_timeout=bad)  # type: ignore[arg-type]


def test_the_settings_idle_timeout_reaches_the_tier() -> None:
    from prsm.performance.caching._factory import build_tiers

    settings = CacheSettings(redis_url="redis://127.0.0.1:1/0", l3="none", redis_idle_timeout=7.5)
    (tier,) = build_tiers(settings)
    assert isinstance(tier, RedisTier) and tier.reaper.idle_timeout == 7.5
    assert CacheSettings().redis_idle_timeout == 60.0
