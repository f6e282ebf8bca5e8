"""The embedded L2 (SQLite WAL) and the content-addressed L3 (local fan-out directory)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from prsm.performance.caching import (
    CacheSettings,
    CacheTier,
    ContentAddressedTier,
    DiskTier,
    LocalBlobStore,
    MultiTierCache,
)
from prsm.performance.clock import ManualClock
from prsm.performance.errors import CacheError, CacheIntegrityError


async def test_disk_round_trip_ttl_and_reopen(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "l2.sqlite3"
    disk = DiskTier(path, clock=clock)
    assert isinstance(disk, CacheTier)
    await disk.set("a", b"1", ttl=10)
    await disk.set("b", b"2")
    assert await disk.get("a") == b"1"
    clock.advance(10)
    assert await disk.get("a") is None
    await disk.aclose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    again = DiskTier(path, clock=clock)
    assert await again.get("b") == b"2"  # survives a restart
    await again.aclose()


async def test_disk_prefix_tag_and_byte_bound(tmp_path: Path, clock: ManualClock) -> None:
    disk = DiskTier(tmp_path / "d.sqlite3", clock=clock, max_bytes=100)
    await disk.set("t1:a", b"x" * 10, tags=["g"])
    await disk.set("t1:b", b"x" * 10)
    await disk.set("t2:a", b"x" * 10, tags=["g"])
    assert await disk.delete_prefix("t1:") == 2
    assert await disk.delete_tag("g") == 1
    assert await disk.size() == (0, 0)
    for i in range(10):
        await disk.set(f"k{i}", b"y" * 30)
    n, size = await disk.size()
    assert size <= 100 and n == 3 and disk.evictions == 7
    assert await disk.get("k9") is not None and await disk.get("k0") is None
    await disk.set("k9", b"z")  # replacing keeps the byte count right
    assert (await disk.size())[1] == 61
    assert await disk.delete("k9") is True and await disk.delete("k9") is False
    await disk.clear()
    assert await disk.size() == (0, 0)
    await disk.aclose()
    with pytest.raises(CacheError, match="closed"):
        await disk.get("x")


async def test_disk_failure_is_a_cache_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    disk = DiskTier(blocker / "l2.sqlite3")
    with pytest.raises(CacheError) as info:
        await disk.set("k", b"v")
    assert info.value.tier == "l2"
    await disk.aclose()


async def test_cas_stores_each_value_once_and_frees_it_with_the_last_key(
    tmp_path: Path, clock: ManualClock
) -> None:
    cas = ContentAddressedTier(tmp_path / "cas", clock=clock)
    assert isinstance(cas, CacheTier)
    await cas.set("a", b"same answer")
    await cas.set("b", b"same answer", tags=["g"])
    await cas.set("c", b"other")
    assert await cas.stats() == {"keys": 3, "blobs": 2, "bytes": 16}
    digest = hashlib.sha256(b"same answer").hexdigest()
    assert LocalBlobStore(tmp_path / "cas").path(digest).read_bytes() == b"same answer"
    files = list((tmp_path / "cas" / "objects").rglob("*"))
    assert len([f for f in files if f.is_file()]) == 2
    await cas.set("a", b"same answer")  # re-setting the same value keeps its blob
    assert await cas.get("a") == b"same answer"
    assert await cas.delete("a") is True
    assert await cas.get("b") == b"same answer"
    assert await cas.delete_tag("g") == 1
    assert await cas.stats() == {"keys": 1, "blobs": 1, "bytes": 5}
    await cas.set("c", b"changed")  # the old blob of "c" goes
    assert await cas.stats() == {"keys": 1, "blobs": 1, "bytes": 7}
    assert await cas.delete_prefix("c") == 1
    assert [f for f in (tmp_path / "cas" / "objects").rglob("*") if f.is_file()] == []
    await cas.aclose()


async def test_cas_ttl_purge_reopen_and_integrity(tmp_path: Path, clock: ManualClock) -> None:
    cas = ContentAddressedTier(tmp_path / "cas", clock=clock)
    await cas.set("short", b"s", ttl=5)
    await cas.set("long", b"l")
    clock.advance(5)
    assert await cas.get("short") is None
    assert await cas.purge_expired() == 1
    await cas.aclose()
    cas = ContentAddressedTier(tmp_path / "cas", clock=clock)
    assert await cas.get("long") == b"l"
    for f in (tmp_path / "cas" / "objects").rglob("*"):
        if f.is_file():
            f.write_bytes(b"tampered")
    with pytest.raises(CacheIntegrityError):
        await cas.get("long")
    for f in (tmp_path / "cas" / "objects").rglob("*"):
        if f.is_file():
            f.unlink()
    assert await cas.get("long") is None  # a vanished blob is a miss, and the key goes
    assert await cas.stats() == {"keys": 0, "blobs": 0, "bytes": 0}
    await cas.clear()
    await cas.aclose()


async def test_multi_tier_on_disk_and_cas_survives_restart(
    tmp_path: Path, clock: ManualClock
) -> None:
    settings = CacheSettings(data_dir=str(tmp_path), l2="disk", l3="cas")
    cache = MultiTierCache(settings, clock=clock)
    await cache.set("k", {"answer": 1}, tags=["g"])
    await cache.aclose()
    cache = MultiTierCache(settings, clock=clock)
    found = await cache.get_entry("k")
    assert found is not None and found[1] == "l2" and found[0].value == {"answer": 1}
    await cache.invalidate_tag("g")
    await cache.aclose()
    cache = MultiTierCache(settings, clock=clock)
    assert await cache.get("k") is None
    await cache.aclose()
