"""The source post's ``MultiTierCache``: L1 memory → L2 Redis or disk → L3 content-addressed.

``get`` tries the tiers in order and promotes a hit into the faster tiers that missed;
``set`` writes through every tier, each with its TTL capped by that tier's maximum. Values
are bytes or JSON, sealed with an integrity digest (:mod:`.codec`) for L2/L3; a corrupt entry
is counted and read as a miss. A tier that raises is skipped, counted and probed again after
a growing back-off (:mod:`.health`); writes and invalidations it missed meanwhile are queued
and replayed as deletions when it is back, so it never serves an entry that was replaced or
invalidated while it was down. ``get_or_compute`` runs the computation of a missing key once
however many callers ask at the same time (:mod:`.singleflight`) and, with ``early_refresh``,
recomputes a hot entry in the background before it expires.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..errors import CacheIntegrityError
from ._codec import CacheEntry
from ._multi_tier_tiers import TierSet
from ._tier_slot import TierSlot

log = logging.getLogger("prsm.performance.cache")

_UNSET: Any = object()


def _cap(ttl: float | None, cap: float | None) -> float | None:
    if cap is None:
        return ttl
    return cap if ttl is None else min(ttl, cap)


class MultiTierCache(TierSet):
    """A tiered exact cache built from ``settings`` (defaults: the post's L1
    :class:`~.tiers.MemoryCache` of 1,000 entries, an embedded disk L2 and a content-addressed
    L3 under the data directory; with ``redis_url`` / ``l3: ipfs`` set, Redis and IPFS).

    The post's form takes any tiers: ``MultiTierCache(l1=MemoryCache(), l2=RedisCache(),
    l3=IPFSCache())``; ``l1`` is a memory tier, ``True`` (built from ``settings``) or
    ``False`` (none), and giving ``l2`` or ``l3`` replaces the lower tiers built from
    ``settings`` with the ones given. ``tiers`` does the same for any number of lower tiers
    (``()``: L1 only). Values returned from L1 are shared: treat them as read-only.

    Its tiers, their state, statistics and closing are :class:`~._multi_tier_tiers.TierSet`'s.
    """

    # -- reading ----------------------------------------------------------------------------

    async def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default`` when no tier has it."""
        found = await self.get_entry(key)
        return default if found is None else found[0].value

    async def get_entry(self, key: str) -> tuple[CacheEntry, str] | None:
        """The entry under ``key`` and the name of the tier that had it, or ``None``."""
        entry = self.get_l1(key)
        if entry is not None:
            return entry, "l1"
        return await self.get_below_l1(key)

    def get_l1(self, key: str) -> CacheEntry | None:
        """The entry under ``key`` in L1 (counted there), without awaiting: the hit path.
        ``None`` on a miss or without L1; :meth:`get_below_l1` then looks further."""
        l1 = self.l1
        if l1 is None:
            return None
        t0 = self._now()
        entry = l1.get_nowait(key)
        st = self.l1_stats
        st.observe(self._now() - t0)
        if entry is not None:
            st.hit += 1
            return entry
        st.miss += 1
        return None

    async def get_below_l1(self, key: str) -> tuple[CacheEntry, str] | None:
        """The entry under ``key`` in the tiers below L1 (promoted into L1 and the tiers that
        missed), with the name of the tier that had it, or ``None``."""
        missed: list[TierSlot] = []
        for slot in self._slots:
            t0 = self._now()
            if (slot.health.failures or slot.pending or slot.needs_clear) and not (
                await slot.ready()
            ):
                slot.stats.skipped += 1
                continue
            try:
                data = await slot.tier.get(key)
            except Exception as exc:
                slot.failed("get", key, exc)
                continue
            slot.stats.observe(self._now() - t0)
            if slot.health.failures:
                slot.succeeded()
            if data is None:
                slot.stats.miss += 1
                missed.append(slot)
                continue
            try:
                entry = self._codec.decode(key, data, tier=slot.name)
            except CacheIntegrityError as exc:
                slot.stats.corrupt += 1
                log.warning("cache %s: %s; treated as a miss and removed", self.name, exc)
                await self._delete_in(slot, key)
                missed.append(slot)
                continue
            expires = entry.expires
            remaining = None if expires is None else expires - self._wall()
            if remaining is not None and remaining <= 0:
                slot.stats.miss += 1
                missed.append(slot)
                continue
            slot.stats.hit += 1
            if self.l1 is not None or missed:
                await self._promote(key, entry, data, remaining, missed)
            return entry, slot.name
        return None

    async def _promote(
        self,
        key: str,
        entry: CacheEntry,
        data: bytes,
        remaining: float | None,
        missed: list[TierSlot],
    ) -> None:
        if self.l1 is not None:
            self.l1.set_nowait(
                key, entry, _cap(remaining, self.settings.l1_max_ttl), entry.tags, size=len(data)
            )
        for slot in missed:
            await self._write(slot, key, data, remaining, entry.tags)

    # -- writing ----------------------------------------------------------------------------

    async def set(
        self, key: str, value: Any, ttl: float | None = _UNSET, *, tags: Sequence[str] = ()
    ) -> None:
        """Store ``value`` (bytes or JSON-serializable) under ``key`` in every tier.

        ``ttl`` defaults to ``settings.default_ttl``; ``None`` keeps it until evicted.
        Raises :class:`TypeError` for a value that cannot be serialized and
        :class:`ValueError` for one over ``max_value_bytes``; never for a tier failure.
        """
        if ttl is _UNSET:
            ttl = self.settings.default_ttl
        if ttl is not None and not ttl > 0:
            raise ValueError(f"ttl: must be > 0 seconds or None, got {ttl!r}")
        wall = self.clock.time()
        tag_t = tuple(tags)
        entry = CacheEntry(value, wall, None if ttl is None else wall + ttl, tag_t)
        data = self._codec.encode(key, entry)
        if len(data) > self.settings.max_value_bytes:
            raise ValueError(
                f"cache value for {key!r} is {len(data)} bytes, over max_value_bytes "
                f"({self.settings.max_value_bytes})"
            )
        if self.l1 is not None:
            self.l1.set_nowait(
                key, entry, _cap(ttl, self.settings.l1_max_ttl), tag_t, size=len(data)
            )
            self.l1_stats.write_ok += 1
        for slot in self._slots:
            await self._write(slot, key, data, ttl, tag_t)

    async def _write(
        self, slot: TierSlot, key: str, data: bytes, ttl: float | None, tags: Sequence[str]
    ) -> None:
        if not await slot.ready():
            slot.stats.write_skipped += 1
            slot.queue("key", key)
            return
        try:
            await slot.tier.set(key, data, _cap(ttl, slot.max_ttl), tags)
        except Exception as exc:
            slot.failed("set", key, exc, write=True)
            slot.queue("key", key)
            return
        slot.succeeded()
        slot.stats.write_ok += 1

    # -- invalidation -----------------------------------------------------------------------

    async def delete(self, key: str) -> bool:
        """Remove ``key`` from every tier; whether any tier had it."""
        found = self.l1.delete_nowait(key) if self.l1 is not None else False
        return await self._invalidate("key", key) > 0 or found

    async def invalidate_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix`` from every tier; entries removed."""
        n = self.l1.delete_prefix_nowait(prefix) if self.l1 is not None else 0
        return n + await self._invalidate("prefix", prefix)

    async def invalidate_tag(self, tag: str) -> int:
        """Remove every entry stored with ``tag`` from every tier; entries removed."""
        n = self.l1.delete_tag_nowait(tag) if self.l1 is not None else 0
        return n + await self._invalidate("tag", tag)

    async def clear(self) -> None:
        """Empty every tier (a failed tier is emptied when it is back)."""
        if self.l1 is not None:
            self.l1.clear_nowait()
        for slot in self._slots:
            if not await slot.ready():
                slot.needs_clear = True
                continue
            try:
                await slot.tier.clear()
            except Exception as exc:
                slot.failed("clear", "*", exc, write=True)
                slot.needs_clear = True

    async def _invalidate(self, kind: str, arg: str) -> int:
        n = 0
        for slot in self._slots:
            if not await slot.ready():
                slot.queue(kind, arg)
                continue
            try:
                n += await slot.apply(kind, arg)
            except Exception as exc:
                slot.failed(f"delete {kind}", arg, exc, write=True)
                slot.queue(kind, arg)
        return n

    async def _delete_in(self, slot: TierSlot, key: str) -> None:
        try:
            await slot.tier.delete(key)
        except Exception as exc:
            slot.failed("delete", key, exc, write=True)
            slot.queue("key", key)

    # -- compute on miss --------------------------------------------------------------------

    async def get_or_compute(
        self,
        key: str,
        fn: Callable[[], Awaitable[Any]],
        ttl: float | None = _UNSET,
        *,
        tags: Sequence[str] = (),
    ) -> Any:
        """The cached value of ``key``; on a miss, ``await fn()``, store and return it.

        Concurrent misses for one key run ``fn`` once; the others get its result or its
        exception. With ``early_refresh`` set, a hit in the last fraction of the entry's
        life starts one background refresh and returns the current value at once.
        """
        found = await self.get_entry(key)
        if found is not None:
            entry = found[0]
            self._maybe_refresh(key, entry, fn, ttl, tags)
            return entry.value
        return await self._flight.do(key, self._computer(key, fn, ttl, tags, check_l1=True))

    def _computer(
        self,
        key: str,
        fn: Callable[[], Awaitable[Any]],
        ttl: float | None,
        tags: Sequence[str],
        *,
        check_l1: bool,
    ) -> Callable[[], Awaitable[Any]]:
        async def compute() -> Any:
            if check_l1 and self.l1 is not None:
                # another flight may have filled it while this caller looked in L2/L3
                entry = self.l1.get_nowait(key)
                if entry is not None:
                    return entry.value
            value = await fn()
            await self.set(key, value, ttl, tags=tags)
            return value

        return compute

    def _maybe_refresh(
        self,
        key: str,
        entry: CacheEntry,
        fn: Callable[[], Awaitable[Any]],
        ttl: float | None,
        tags: Sequence[str],
    ) -> None:
        fraction = self.settings.early_refresh
        if fraction is None or entry.expires is None or self._flight.in_flight(key):
            return
        life = entry.expires - entry.created
        if entry.expires - self.clock.time() > life * fraction:
            return
        self.refreshes += 1
        task = asyncio.ensure_future(self._refresh(key, fn, ttl, tags))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh(
        self, key: str, fn: Callable[[], Awaitable[Any]], ttl: float | None, tags: Sequence[str]
    ) -> None:
        try:
            await self._flight.do(key, self._computer(key, fn, ttl, tags, check_l1=False))
        except Exception as exc:
            self.refresh_errors += 1
            log.warning("cache %s: early refresh of %r failed: %r", self.name, key, exc)

    async def __aenter__(self) -> MultiTierCache:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
