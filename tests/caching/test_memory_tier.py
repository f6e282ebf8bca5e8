"""L1: LRU by entries and bytes, TTL on the injected clock, tags and prefixes."""

from __future__ import annotations

import pytest

from prsm.performance.caching.tiers import CacheTier, MemoryTier
from prsm.performance.clock import ManualClock
from prsm.performance.errors import ConfigError


def test_lru_evicts_least_recently_used_by_count(clock: ManualClock) -> None:
    t: MemoryTier[bytes] = MemoryTier(max_entries=3, clock=clock)
    for k in "abc":
        t.set_nowait(k, k.encode())
    assert t.get_nowait("a") == b"a"  # a is now most recent
    t.set_nowait("d", b"d")
    assert list(t.keys()) == ["c", "a", "d"]
    assert t.get_nowait("b") is None
    assert t.evictions == 1


def test_byte_bound_evicts_and_rejects_oversized(clock: ManualClock) -> None:
    t: MemoryTier[bytes] = MemoryTier(max_entries=100, max_bytes=10, clock=clock)
    t.set_nowait("a", b"12345")
    t.set_nowait("b", b"12345")
    assert t.nbytes == 10
    t.set_nowait("c", b"123")
    assert "a" not in t and t.nbytes == 8
    assert t.set_nowait("big", b"x" * 11) is False
    assert "big" not in t and t.rejected == 1
    t.set_nowait("b", b"1")  # replacing updates the byte count
    assert t.nbytes == 4


def test_ttl_expires_on_the_manual_clock(clock: ManualClock) -> None:
    t: MemoryTier[bytes] = MemoryTier(clock=clock)
    t.set_nowait("a", b"v", ttl=10)
    t.set_nowait("forever", b"v")
    clock.advance(9.9)
    assert t.get_nowait("a") == b"v"
    clock.advance(0.1)
    assert t.get_nowait("a") is None
    assert t.expirations == 1 and len(t) == 1
    clock.advance(1e6)
    assert t.get_nowait("forever") == b"v"
    assert t.set_nowait("zero", b"v", ttl=0) is False


def test_explicit_size_for_objects(clock: ManualClock) -> None:
    t: MemoryTier[object] = MemoryTier(max_bytes=100, clock=clock)
    t.set_nowait("x", {"a": 1}, size=60)
    t.set_nowait("y", {"b": 2}, size=60)
    assert "x" not in t and t.get_nowait("y") == {"b": 2}


def test_tags_and_prefixes(clock: ManualClock) -> None:
    t: MemoryTier[bytes] = MemoryTier(clock=clock)
    t.set_nowait("t1:a", b"1", tags=["red"])
    t.set_nowait("t1:b", b"2", tags=["red", "blue"])
    t.set_nowait("t2:a", b"3", tags=["blue"])
    assert t.delete_tag_nowait("red") == 2
    assert list(t.keys()) == ["t2:a"]
    assert t.delete_tag_nowait("red") == 0
    t.set_nowait("t1:c", b"4")
    assert t.delete_prefix_nowait("t1:") == 1
    assert t.delete_tag_nowait("blue") == 1
    assert len(t) == 0 and t.nbytes == 0


async def test_is_a_cache_tier(clock: ManualClock) -> None:
    t: MemoryTier[bytes] = MemoryTier(clock=clock)
    assert isinstance(t, CacheTier)
    await t.set("k", b"v", 5, ["g"])
    assert await t.get("k") == b"v"
    assert await t.delete("k") is True
    assert await t.delete("k") is False
    await t.set("k", b"v")
    assert await t.delete_prefix("k") == 1
    await t.set("k", b"v", tags=["g"])
    assert await t.delete_tag("g") == 1
    await t.set("k", b"v")
    await t.clear()
    assert len(t) == 0
    await t.aclose()


def test_bad_bounds_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_entries"):
        MemoryTier(max_entries=0)
    with pytest.raises(ConfigError, match="max_bytes"):
        MemoryTier(max_bytes=-1)
