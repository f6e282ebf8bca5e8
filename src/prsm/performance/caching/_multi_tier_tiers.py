"""A :class:`~._multi_tier.MultiTierCache`'s tiers and their state: the base of that class.

:class:`TierSet` builds the L1 memory tier and the lower tiers' slots from the settings (or
takes the ones given), with their statistics, the single flight and the background
refreshes; it reports them (``stats``, ``metric_snapshot``) and closes them.
:class:`~._multi_tier.MultiTierCache` adds reading, writing, invalidation and compute on miss.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..clock import Clock, SystemClock
from ..errors import ConfigError
from ..monitoring._registry import MetricsRegistry
from ._codec import CacheCodec, CacheEntry
from ._settings import CacheSettings
from ._singleflight import SingleFlight
from ._stats import TierStats, register_source
from ._tier_slot import TierSlot
from .tiers._base import CacheTier
from .tiers._memory import MemoryTier
from .tiers._post import MemoryCache


class TierSet:
    """The tiers of a :class:`~._multi_tier.MultiTierCache` (whose text says what each
    argument does), their state, their statistics and their closing."""

    def __init__(
        self,
        settings: CacheSettings | None = None,
        *,
        l1: MemoryTier[CacheEntry] | bool = True,
        l2: CacheTier | None = None,
        l3: CacheTier | None = None,
        tiers: Sequence[CacheTier] | None = None,
        metrics: MetricsRegistry | None = None,
        clock: Clock | None = None,
        name: str = "exact",
    ) -> None:
        if tiers is not None and (l2 is not None or l3 is not None):
            raise ConfigError("tiers", "give either tiers= or l2=/l3=, not both")
        if l2 is not None or l3 is not None:
            tiers = [t for t in (l2, l3) if t is not None]
        self.settings = s = settings or CacheSettings()
        self.clock: Clock = clock or SystemClock()
        self.name = name
        system = isinstance(self.clock, SystemClock)
        # the real clock's methods are time.monotonic/time.time: call those directly
        self._now: Callable[[], float] = time.monotonic if system else self.clock.monotonic
        self._wall: Callable[[], float] = time.time if system else self.clock.time
        self._codec = CacheCodec(s.signing_key)
        self.l1: MemoryTier[CacheEntry] | None
        if isinstance(l1, MemoryTier):
            self.l1 = l1
        else:
            self.l1 = (
                MemoryCache(s.l1_max_entries, s.l1_max_bytes, clock=self.clock) if l1 else None
            )
        self.l1_stats = TierStats()
        if tiers is None:
            from ._factory import build_tiers

            tiers = build_tiers(s, clock=self.clock)
        caps = {"l1": s.l1_max_ttl, "l2": s.l2_max_ttl, "l3": s.l3_max_ttl}
        self._slots = [
            TierSlot(
                t,
                caps.get(t.name),
                backoff=s.failure_backoff,
                backoff_max=s.failure_backoff_max,
                now=self._now,
                cache=name,
            )
            for t in tiers
        ]
        self._flight: SingleFlight[Any] = SingleFlight()
        self._background: set[asyncio.Task[None]] = set()
        self.refreshes = 0
        self.refresh_errors = 0
        self.metrics = metrics
        if metrics is not None:
            register_source(metrics, self)

    @property
    def tiers(self) -> tuple[CacheTier, ...]:
        """The tiers below L1, fastest first."""
        return tuple(slot.tier for slot in self._slots)

    # -- stats and lifecycle ----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Per-tier hits, misses, errors, skips, corrupt entries, writes and mean latency, plus
        L1 occupancy and single-flight counts."""
        tiers: dict[str, Any] = {}
        if self.l1 is not None:
            tiers["l1"] = self.l1_stats.as_dict() | {
                "entries": len(self.l1),
                "bytes": self.l1.nbytes,
                "evictions": self.l1.evictions,
                "up": True,
            }
        for slot in self._slots:
            tiers[slot.name] = slot.stats.as_dict() | {
                "up": slot.up,
                "consecutive_failures": slot.health.failures,
                "pending_invalidations": len(slot.pending) + (1 if slot.needs_clear else 0),
            }
        return {"cache": self.name, "tiers": tiers, "flights": self._flight_counts()}

    def _flight_counts(self) -> dict[str, int]:
        return {
            "leader": self._flight.leaders,
            "follower": self._flight.followers,
            "refresh": self.refreshes,
            "refresh_error": self.refresh_errors,
        }

    def metric_snapshot(self) -> dict[str, Any]:
        """What :class:`~.stats.CacheCollector` exports."""
        tiers: dict[str, tuple[TierStats, bool]] = {}
        if self.l1 is not None:
            tiers["l1"] = (self.l1_stats, True)
        for slot in self._slots:
            tiers[slot.name] = (slot.stats, slot.up)
        l1 = None if self.l1 is None else (len(self.l1), self.l1.nbytes, self.l1.evictions)
        return {"tiers": tiers, "l1": l1, "flights": self._flight_counts()}

    async def aclose(self) -> None:
        """Stop background refreshes and close every tier."""
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for slot in self._slots:
            try:
                await slot.tier.aclose()
            except Exception as exc:
                slot.failed("close", "*", exc, write=True)
