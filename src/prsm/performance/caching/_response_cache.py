"""``ExactResponseCache``: the request path's exact cache (a ``ResponseCache`` over
:class:`~.multi_tier.MultiTierCache`).

A request's key (:mod:`.keys`) covers everything that changes its answer and its tenant.
``request.cache_mode`` is honoured: ``"default"`` reads and stores, ``"no-cache"`` stores
without reading, ``"no-store"`` does neither. Only successful answers (HTTP 200 by default)
whose content is JSON are kept; streamed answers are kept as the complete answer they add up
to (:meth:`ExactResponseCache.record_stream`) and replayed as server-sent events by
:func:`~.sse.render_sse` (see :meth:`ExactResponseCache.replay`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Iterator
from typing import Any

from ..types import AIRequest, Response
from ._base import CacheHit, ResponseCache
from ._keys import RequestKeyer, tenant_prefix
from ._multi_tier import _UNSET, MultiTierCache
from ._sse import SSEAssembler, render_sse

log = logging.getLogger("prsm.performance.cache")


class ExactResponseCache:
    """Answers a request from the multi-tier cache when an identical one was answered.

    ``ttl`` overrides the cache's default TTL for responses; ``cacheable_status`` lists the
    HTTP statuses worth keeping.
    """

    def __init__(
        self,
        cache: MultiTierCache | None = None,
        *,
        keyer: RequestKeyer | None = None,
        ttl: float | None = _UNSET,
        cacheable_status: Collection[int] = (200,),
    ) -> None:
        self.cache = cache if cache is not None else MultiTierCache()
        self.keyer = keyer or RequestKeyer()
        self.ttl = ttl
        self.cacheable_status = frozenset(cacheable_status)
        self.unstorable = 0
        self.malformed = 0
        self.unkeyable = 0

    def key(self, request: AIRequest) -> str:
        """The cache key of ``request``."""
        return self.keyer.key(request)

    def _key(self, request: AIRequest) -> str | None:
        try:
            return self.keyer.key(request)
        except TypeError as exc:
            # a library caller's payload that is not JSON cannot be keyed: not cached
            self.unkeyable += 1
            log.info("exact cache: request %s cannot be keyed: %s", request.id, exc)
            return None

    async def lookup(self, request: AIRequest) -> CacheHit | None:
        if request.cache_mode != "default":
            return None
        key = self._key(request)
        if key is None:
            return None
        cache = self.cache
        entry = cache.get_l1(key)  # the hit path does not await
        tier = "l1"
        if entry is None:
            found = await cache.get_below_l1(key)
            if found is None:
                return None
            entry, tier = found
        value = entry.value
        if not isinstance(value, dict) or "c" not in value:
            self.malformed += 1
            log.warning("exact cache: entry for request %s is not a response; ignored", request.id)
            return None
        response = Response(
            content=value["c"], status=value.get("s", 200), tokens=value.get("t", 0)
        )
        return CacheHit(response, tier)

    async def store(self, request: AIRequest, response: Response) -> None:
        if request.cache_mode == "no-store" or response.status not in self.cacheable_status:
            return
        key = self._key(request)
        if key is None:
            return
        value: dict[str, Any] = {"c": response.content, "s": response.status, "t": response.tokens}
        try:
            await self.cache.set(key, value, self.ttl)
        except (TypeError, ValueError) as exc:
            # an answer that cannot be kept (not JSON, too large) is served, not cached
            self.unstorable += 1
            log.info("exact cache: not storing the answer to %s: %s", request.id, exc)

    def record_stream(
        self, request: AIRequest, stream: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        """Pass ``stream``'s chunks through unchanged; when it finishes cleanly, store the
        complete answer it added up to (an interrupted or failed stream is not stored)."""
        return _record_answer(self, request, stream)

    @staticmethod
    def replay(hit: CacheHit, *, chunk_chars: int | None = None) -> Iterator[bytes]:
        """A cached chat completion (or text completion) as OpenAI server-sent events."""
        if not replayable(hit):
            raise TypeError("only an OpenAI completion object can be replayed as a stream")
        return render_sse(hit.response.content, chunk_chars=chunk_chars)

    async def invalidate_tenant(self, tenant: str, model: str | None = None) -> int:
        """Forget every answer kept for ``tenant`` (only for ``model``, when given)."""
        return await self.cache.invalidate_prefix(tenant_prefix(tenant, model))

    def stats(self) -> dict[str, Any]:
        """The multi-tier cache's stats plus answers not stored, entries not readable and
        requests that could not be keyed."""
        return self.cache.stats() | {
            "unstorable": self.unstorable,
            "malformed": self.malformed,
            "unkeyable": self.unkeyable,
        }

    async def aclose(self) -> None:
        await self.cache.aclose()


def replayable(hit: CacheHit) -> bool:
    """Whether ``hit`` holds an OpenAI completion object that can be replayed as a stream."""
    content = hit.response.content
    return isinstance(content, dict) and isinstance(content.get("choices"), list)


async def _record_answer(
    cache: ResponseCache, request: AIRequest, stream: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """Pass ``stream``'s chunks through unchanged; when it finishes cleanly, store in
    ``cache`` the complete answer it added up to (an interrupted or failed stream is not
    stored)."""
    asm = SSEAssembler()
    async for chunk in stream:
        asm.feed(chunk)
        yield chunk
    result = asm.result()
    if result is not None:
        await cache.store(request, Response(content=result))


class CachedStream:
    """A streamed answer through any :class:`ResponseCache` (exact, semantic or chained).

    On the first ``__anext__`` it looks ``request`` up (when ``cache_mode`` allows): a hit
    that holds a completion object is replayed as server-sent events and ``tier`` /
    ``similarity`` say where it came from; otherwise ``open_stream()`` is called and its
    chunks pass through unchanged, and when it finishes cleanly the complete answer is
    stored (unless ``cache_mode`` is ``no-store``). ``tier`` is known once the first chunk
    has been yielded, before it is sent anywhere.
    """

    def __init__(
        self,
        cache: ResponseCache,
        request: AIRequest,
        open_stream: Callable[[], AsyncIterator[bytes]],
        *,
        chunk_chars: int | None = None,
    ) -> None:
        self.cache = cache
        self.request = request
        self.tier: str | None = None
        self.similarity: float | None = None
        self._open = open_stream
        self._chunk_chars = chunk_chars
        self._gen = self._run()

    def __aiter__(self) -> CachedStream:
        return self

    async def __anext__(self) -> bytes:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        await self._gen.aclose()

    async def _run(self) -> AsyncGenerator[bytes, None]:
        request = self.request
        if request.cache_mode == "default":
            hit = await self.cache.lookup(request)
            if hit is not None and replayable(hit):
                self.tier, self.similarity = hit.tier, hit.similarity
                for event in render_sse(hit.response.content, chunk_chars=self._chunk_chars):
                    yield event
                return
        stream = self._open()
        try:
            if request.cache_mode == "no-store":
                async for chunk in stream:
                    yield chunk
                return
            async for chunk in _record_answer(self.cache, request, stream):
                yield chunk
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()
