"""MultiTierCache over in-memory fake tiers, on the manual clock: promotion, write-through,
per-tier TTL, invalidation, integrity, failing tiers, stats and metrics."""

from __future__ import annotations

import pytest

from prsm.performance.caching import CacheSettings, InMemoryTier, MultiTierCache
from prsm.performance.clock import ManualClock
from prsm.performance.monitoring._registry import MetricsRegistry


def _cache(
    clock: ManualClock, n: int = 2, metrics: MetricsRegistry | None = None, **settings: object
) -> tuple[MultiTierCache, list[InMemoryTier]]:
    tiers = [InMemoryTier(f"l{i + 2}", clock=clock) for i in range(n)]
    cache = MultiTierCache(
        CacheSettings(**settings),  # type: ignore[arg-type]
        tiers=tiers,
        clock=clock,
        metrics=metrics,
    )
    return cache, tiers


async def test_set_writes_through_and_get_hits_l1(clock: ManualClock) -> None:
    cache, (l2, l3) = _cache(clock)
    await cache.set("k", {"answer": 42})
    assert "k" in l2.data and "k" in l3.data
    assert await cache.get("k") == {"answer": 42}
    assert (await cache.get_entry("k"))[1] == "l1"  # type: ignore[index]
    assert l2.calls == 1  # only the write reached L2
    assert await cache.get("missing", "dflt") == "dflt"
    st = cache.stats()["tiers"]
    assert st["l1"]["hits"] == 2 and st["l1"]["misses"] == 1
    assert st["l2"]["misses"] == 1 and st["l3"]["misses"] == 1


async def test_l3_hit_is_promoted_into_l2_and_l1_with_remaining_ttl(clock: ManualClock) -> None:
    cache, (l2, _) = _cache(clock)
    await cache.set("k", b"bytes", ttl=100)
    cache.l1.clear_nowait()  # type: ignore[union-attr]
    del l2.data["k"]
    clock.advance(40)
    found = await cache.get_entry("k")
    assert found is not None and found[1] == "l3" and found[0].value == b"bytes"
    assert "k" in l2.data and l2.data["k"][1] == pytest.approx(clock.monotonic() + 60)
    assert (await cache.get_entry("k"))[1] == "l1"  # type: ignore[index]
    clock.advance(60)
    assert await cache.get("k") is None  # expired everywhere at the original time


async def test_per_tier_ttl_caps(clock: ManualClock) -> None:
    cache, (l2, l3) = _cache(clock, l1_max_ttl=5.0, l2_max_ttl=50.0)
    await cache.set("k", 1, ttl=500)
    assert l2.data["k"][1] == 50 and l3.data["k"][1] == 500
    clock.advance(6)
    assert (await cache.get_entry("k"))[1] == "l2"  # type: ignore[index]
    await cache.set("forever", 1, ttl=None)
    assert l2.data["forever"][1] == 56 and l3.data["forever"][1] is None
    with pytest.raises(ValueError, match="ttl"):
        await cache.set("k", 1, ttl=0)


async def test_delete_prefix_and_tag_invalidation_reach_every_tier(clock: ManualClock) -> None:
    cache, (l2, l3) = _cache(clock)
    await cache.set("t1:a", 1, tags=["m:x"])
    await cache.set("t1:b", 2)
    await cache.set("t2:a", 3, tags=["m:x"])
    await cache.set("t2:b", 4)
    assert await cache.delete("t2:b") is True
    assert await cache.delete("t2:b") is False
    assert await cache.invalidate_prefix("t1:") == 2 * 3
    assert await cache.invalidate_tag("m:x") == 3
    assert l2.data == {} and l3.data == {} and len(cache.l1) == 0  # type: ignore[arg-type]


async def test_tags_survive_promotion(clock: ManualClock) -> None:
    cache, (l2,) = _cache(clock, n=1)
    await cache.set("k", 1, tags=["g"])
    cache.l1.clear_nowait()  # type: ignore[union-attr]
    assert await cache.get("k") == 1  # promoted from L2, tags carried in the envelope
    l2.data.clear()
    assert await cache.invalidate_tag("g") == 1  # removed from L1 by its tag
    assert await cache.get("k") is None


async def test_corrupt_entry_is_a_counted_miss_and_removed(clock: ManualClock) -> None:
    cache, (l2, l3) = _cache(clock)
    await cache.set("k", {"v": 1})
    cache.l1.clear_nowait()  # type: ignore[union-attr]
    l2.corrupt("k")
    found = await cache.get_entry("k")
    assert found is not None and found[1] == "l3"  # L2's copy rejected, L3's used
    assert cache.stats()["tiers"]["l2"]["corrupt"] == 1
    assert "k" in l2.data  # re-promoted from L3 after the corrupt copy was removed
    cache.l1.clear_nowait()  # type: ignore[union-attr]
    l2.corrupt("k")
    l3.corrupt("k")
    assert await cache.get("k") is None
    assert "k" not in l3.data


async def test_forged_entry_under_a_signing_key_is_rejected(clock: ManualClock) -> None:
    cache, (l2,) = _cache(clock, n=1, signing_key="s3cret")
    forger, _ = _cache(clock, n=1)
    forger_tier = forger.tiers[0]
    await forger.set("k", {"evil": True})
    l2.data["k"] = forger_tier.data["k"]  # type: ignore[attr-defined]
    assert await cache.get("k") is None
    assert cache.stats()["tiers"]["l2"]["corrupt"] == 1


async def test_failing_tier_is_skipped_counted_and_retried_with_backoff(
    clock: ManualClock,
) -> None:
    cache, (l2, l3) = _cache(clock, failure_backoff=1.0, failure_backoff_max=4.0)
    await cache.set("old", "v1")
    l2.down = True
    await cache.set("old", "v2")  # L2 fails: counted, skipped, the write still succeeds
    assert await cache.get("old") == "v2"
    calls = l2.calls
    assert await cache.get("x") is None  # L2 is backing off: not called
    assert l2.calls == calls
    st = cache.stats()["tiers"]["l2"]
    assert st["write_errors"] == 1 and st["skipped"] == 1 and st["up"] is False
    clock.advance(1.0)
    assert await cache.get("x") is None  # probe fails: wait doubles to 2 s
    clock.advance(1.5)
    await cache.get("y")
    assert l2.calls == calls + 1
    l2.down = False
    clock.advance(0.5)
    cache.l1.clear_nowait()  # type: ignore[union-attr]
    # back: first the stale "old" (v1, written before the outage) is deleted, then used
    assert await cache.get("old") == "v2"
    assert (await cache.get_entry("old"))[1] == "l1"  # type: ignore[index]
    assert cache.stats()["tiers"]["l2"]["up"] is True
    assert l2.data["old"][0] == l3.data["old"][0]  # promoted copy from L3


async def test_invalidations_missed_while_down_are_replayed(clock: ManualClock) -> None:
    cache, (l2,) = _cache(clock, n=1)
    await cache.set("t1:a", 1)
    await cache.set("b", 2, tags=["g"])
    l2.down = True
    await cache.invalidate_prefix("t1:")
    await cache.invalidate_tag("g")
    assert cache.stats()["tiers"]["l2"]["pending_invalidations"] == 2
    l2.down = False
    clock.advance(60)
    assert await cache.get("t1:a") is None and await cache.get("b") is None
    assert l2.data == {}


async def test_too_many_missed_invalidations_clear_the_tier(clock: ManualClock) -> None:
    cache, (l2,) = _cache(clock, n=1)
    await cache.set("keep-not", 1)
    l2.down = True
    for i in range(1001):
        await cache.delete(f"k{i}")
    l2.down = False
    clock.advance(60)
    await cache.get("anything")
    assert l2.data == {}


async def test_clear_and_values_that_cannot_be_cached(clock: ManualClock) -> None:
    cache, (l2, _) = _cache(clock, max_value_bytes=64)
    await cache.set("k", 1)
    await cache.clear()
    assert l2.data == {} and await cache.get("k") is None
    with pytest.raises(TypeError):
        await cache.set("k", {1, 2})
    with pytest.raises(ValueError, match="max_value_bytes"):
        await cache.set("k", "x" * 100)


async def test_l1_only_and_no_l1(clock: ManualClock) -> None:
    only = MultiTierCache(tiers=(), clock=clock)
    await only.set("k", [1])
    assert await only.get("k") == [1] and only.tiers == ()
    (tier,) = [InMemoryTier("l2", clock=clock)]
    bare = MultiTierCache(tiers=[tier], l1=False, clock=clock)
    await bare.set("k", [2])
    assert await bare.get("k") == [2] and "l1" not in bare.stats()["tiers"]


async def test_stats_are_exported_as_prometheus_metrics(clock: ManualClock) -> None:
    metrics = MetricsRegistry()
    cache, (l2, _) = _cache(clock, metrics=metrics)
    await cache.set("k", 1)
    await cache.get("k")
    await cache.get("nope")
    l2.down = True
    await cache.get("nope")
    text = metrics.exposition().decode()
    assert 'prsm_cache_requests_total{cache="exact",result="hit",tier="l1"} 1.0' in text
    assert 'prsm_cache_requests_total{cache="exact",result="error",tier="l2"} 1.0' in text
    assert 'prsm_cache_tier_up{cache="exact",tier="l2"} 0.0' in text
    assert 'prsm_cache_l1_entries{cache="exact"} 1.0' in text
    assert "prsm_cache_tier_latency_seconds_bucket" in text
    other = MultiTierCache(tiers=(), clock=clock, metrics=metrics, name="second")
    await other.get("x")
    assert 'cache="second"' in metrics.exposition().decode()


async def test_aclose_closes_tiers(clock: ManualClock) -> None:
    cache, (l2, _) = _cache(clock)
    await cache.set("k", 1)
    async with cache:
        pass
    assert l2.data == {}
