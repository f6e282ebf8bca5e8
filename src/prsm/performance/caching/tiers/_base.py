"""The ``CacheTier`` edge: one level of the exact cache, storing bytes under string keys.

Tiers know nothing of serialization or integrity: :class:`~..multi_tier.MultiTierCache`
hands them sealed envelopes (:mod:`..codec`) and checks them on the way back. A tier raises
:class:`~prsm.performance.errors.CacheError` when its backend fails; the multi-tier cache
skips it, counts it and tries it again later. ``ttl`` is in seconds (``None``: no expiry);
``tags`` name groups of keys that :meth:`CacheTier.delete_tag` removes together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class CacheTier(Protocol):
    """One level of the exact cache."""

    name: str

    async def get(self, key: str) -> bytes | None:
        """The bytes stored under ``key``, or ``None`` (absent or expired)."""
        ...

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, tags: Sequence[str] = ()
    ) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, in the groups ``tags``."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; whether it was there."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix``; how many were removed."""
        ...

    async def delete_tag(self, tag: str) -> int:
        """Remove every key stored with ``tag``; how many were removed."""
        ...

    async def clear(self) -> None:
        """Remove everything this tier holds."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads and files."""
        ...
