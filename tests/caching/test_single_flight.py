"""get_or_compute: one computation for concurrent misses, shared errors, early refresh."""

from __future__ import annotations

import asyncio

import pytest

from prsm.performance.caching import CacheSettings, InMemoryTier, MultiTierCache, SingleFlight
from prsm.performance.clock import ManualClock


def _cache(clock: ManualClock, **settings: object) -> tuple[MultiTierCache, InMemoryTier]:
    l2 = InMemoryTier("l2", clock=clock)
    cache = MultiTierCache(CacheSettings(**settings), tiers=[l2], clock=clock)  # type: ignore[arg-type]
    return cache, l2


async def test_concurrent_misses_compute_once(clock: ManualClock) -> None:
    cache, l2 = _cache(clock)
    calls = 0
    release = asyncio.Event()

    async def compute() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await release.wait()
        return {"n": calls}

    tasks = [asyncio.create_task(cache.get_or_compute("k", compute)) for _ in range(20)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*tasks)
    assert calls == 1 and all(r == {"n": 1} for r in results)
    assert "k" in l2.data
    flights = cache.stats()["flights"]
    assert flights["leader"] == 1 and flights["follower"] == 19
    assert await cache.get_or_compute("k", compute) == {"n": 1} and calls == 1


async def test_every_waiter_gets_the_error_and_nothing_is_cached(clock: ManualClock) -> None:
    cache, l2 = _cache(clock)
    release = asyncio.Event()
    calls = 0

    async def boom() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        raise RuntimeError("upstream failed")

    tasks = [asyncio.create_task(cache.get_or_compute("k", boom)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert calls == 1
    assert all(isinstance(r, RuntimeError) and str(r) == "upstream failed" for r in results)
    assert l2.data == {}

    async def fine() -> int:
        return 7

    assert await cache.get_or_compute("k", fine) == 7  # the next miss computes again


async def test_a_cancelled_leader_does_not_cancel_the_followers() -> None:
    flight: SingleFlight[int] = SingleFlight()
    release = asyncio.Event()

    async def compute() -> int:
        await release.wait()
        return 5

    leader = asyncio.create_task(flight.do("k", compute))
    await asyncio.sleep(0)
    follower = asyncio.create_task(flight.do("k", compute))
    await asyncio.sleep(0)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    release.set()
    assert await follower == 5
    assert not flight.in_flight("k")


async def test_early_refresh_recomputes_hot_entries_in_the_background(clock: ManualClock) -> None:
    cache, _ = _cache(clock, early_refresh=0.1)
    version = 0

    async def compute() -> int:
        nonlocal version
        version += 1
        return version

    assert await cache.get_or_compute("k", compute, ttl=100) == 1
    clock.advance(80)
    assert await cache.get_or_compute("k", compute, ttl=100) == 1  # not yet in the last 10 %
    assert version == 1
    clock.advance(15)
    assert await cache.get_or_compute("k", compute, ttl=100) == 1  # served, refresh started
    for _ in range(5):
        await asyncio.sleep(0)
    assert version == 2
    assert await cache.get("k") == 2
    clock.advance(50)
    assert await cache.get("k") == 2  # the refreshed entry lives a full TTL again
    assert cache.stats()["flights"]["refresh"] == 1


async def test_failed_early_refresh_is_counted_and_keeps_the_old_value(
    clock: ManualClock,
) -> None:
    cache, _ = _cache(clock, early_refresh=0.5)

    async def first() -> str:
        return "old"

    async def failing() -> str:
        raise RuntimeError("down")

    await cache.get_or_compute("k", first, ttl=10)
    clock.advance(6)
    assert await cache.get_or_compute("k", failing, ttl=10) == "old"
    for _ in range(5):
        await asyncio.sleep(0)
    assert cache.stats()["flights"]["refresh_error"] == 1
    assert await cache.get("k") == "old"
    await cache.aclose()
