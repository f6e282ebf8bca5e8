"""One lower tier as the multi-tier cache drives it: its stats, its health, and the
invalidations it missed while it was failing.

A tier that raises is skipped until its back-off (:mod:`.health`) ends; every write or
invalidation it misses meanwhile is queued as a deletion and replayed before the tier is used
again (past :data:`MAX_PENDING` queued, the tier is cleared instead), so a tier that comes
back never serves an entry that was replaced or invalidated while it was away.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..errors import CacheError
from ._health import HEALTHY, TierHealth, after_failure, after_success
from ._stats import TierStats
from .tiers._base import CacheTier

log = logging.getLogger("prsm.performance.cache")

#: invalidations queued per failed tier before it is cleared entirely on recovery instead
MAX_PENDING = 1000


class TierSlot:
    """``tier`` with its TTL cap, stats, health and queue of missed invalidations."""

    __slots__ = (
        "_backoff",
        "_backoff_max",
        "_cache",
        "_now",
        "health",
        "max_ttl",
        "name",
        "needs_clear",
        "pending",
        "stats",
        "tier",
    )

    def __init__(
        self,
        tier: CacheTier,
        max_ttl: float | None,
        *,
        backoff: float,
        backoff_max: float,
        now: Callable[[], float],
        cache: str,
    ) -> None:
        self.tier = tier
        self.name = tier.name
        self.max_ttl = max_ttl
        self.stats = TierStats()
        self.health: TierHealth = HEALTHY
        self.pending: list[tuple[str, str]] = []
        self.needs_clear = False
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._now = now
        self._cache = cache

    @property
    def up(self) -> bool:
        """Whether the tier is in use (not failing)."""
        return self.health.failures == 0

    def succeeded(self) -> None:
        if self.health.failures:
            self.health = after_success(self.health)

    def failed(self, op: str, key: str, exc: Exception, *, write: bool = False) -> None:
        """Count a failure and start (or lengthen) the back-off."""
        if write:
            self.stats.write_error += 1
        else:
            self.stats.error += 1
        self.health = after_failure(self.health, self._now(), self._backoff, self._backoff_max)
        if isinstance(exc, CacheError):
            log.warning(
                "cache %s: tier %s %s %r failed, skipped: %s", self._cache, self.name, op, key, exc
            )
        else:
            log.warning(
                "cache %s: tier %s %s %r raised, skipped",
                self._cache,
                self.name,
                op,
                key,
                exc_info=exc,
            )

    def queue(self, kind: str, arg: str) -> None:
        """Remember to delete ``arg`` (a key, prefix or tag) once the tier is back."""
        if self.needs_clear:
            return
        if len(self.pending) >= MAX_PENDING:
            self.pending.clear()
            self.needs_clear = True
            return
        self.pending.append((kind, arg))

    async def apply(self, kind: str, arg: str) -> int:
        """Delete a key, a prefix or a tag in the tier; how many entries went."""
        if kind == "key":
            return int(await self.tier.delete(arg))
        if kind == "prefix":
            return await self.tier.delete_prefix(arg)
        return await self.tier.delete_tag(arg)

    async def ready(self) -> bool:
        """Whether the tier may be used now; first replays what it missed while down."""
        if not self.health.available(self._now()):
            return False
        if not self.pending and not self.needs_clear:
            return True
        try:
            if self.needs_clear:
                await self.tier.clear()
                self.needs_clear = False
                self.pending.clear()
            while self.pending:
                kind, arg = self.pending[0]
                await self.apply(kind, arg)
                self.pending.pop(0)
        except Exception as exc:
            self.failed("replay", "*", exc, write=True)
            return False
        return True
