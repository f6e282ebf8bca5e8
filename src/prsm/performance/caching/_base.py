"""The cache edge the request path sees: look a request up, store its answer.

The orchestrator and the gateway know only :class:`ResponseCache`; the exact multi-tier
cache and the semantic cache each provide one, and :class:`ChainedResponseCache` asks
several in order (exact first, then semantic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..types import AIRequest, Response


@dataclass(slots=True)
class CacheHit:
    """A cached answer: which tier gave it, and for semantic hits the similarity and the
    query that was originally cached. (Built on every hit: not frozen, because a frozen
    dataclass's ``__init__`` costs three times as much; treat it as read-only.)"""

    response: Response
    tier: str
    similarity: float | None = None
    original_query: str | None = None


@runtime_checkable
class ResponseCache(Protocol):
    """Answers requests from cache and keeps new answers."""

    async def lookup(self, request: AIRequest) -> CacheHit | None:
        """The cached answer for ``request``, or ``None``. Never raises for a tier failure."""
        ...

    async def store(self, request: AIRequest, response: Response) -> None:
        """Keep ``response`` as the answer to ``request``. Never raises for a tier failure."""
        ...


class ChainedResponseCache:
    """Several caches asked in order; the first hit wins; stores go to all."""

    def __init__(self, caches: Sequence[ResponseCache]) -> None:
        self.caches = tuple(caches)

    async def lookup(self, request: AIRequest) -> CacheHit | None:
        for cache in self.caches:
            hit = await cache.lookup(request)
            if hit is not None:
                return hit
        return None

    async def store(self, request: AIRequest, response: Response) -> None:
        for cache in self.caches:
            await cache.store(request, response)

    async def aclose(self) -> None:
        """Close every cache that has ``aclose()``."""
        for cache in self.caches:
            close = getattr(cache, "aclose", None)
            if close is not None:
                await close()
