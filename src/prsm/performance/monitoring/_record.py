"""Recording what the pipeline answered: one call for a finished ``handle()``, one wrapper for
a stream. Used by the orchestrator, so library callers and the gateway are recorded alike.

Streams: the time to the first chunk, each gap between chunks, and the output size, counted
as the stream's ``data:`` events less the final ``[DONE]`` (an OpenAI-compatible server sends
one event per generated token by default, so this is the output token count as vLLM reports
it; a server that batches tokens into events makes it a lower bound). An event is a line that
begins ``data:``: the answer's own text may hold ``data:``, never at a line's start (a newline
in a JSON string is escaped); a ``\ndata:`` split between two chunks is missed (a lower bound
again; whole events, as the streaming driver forwards them, are never split). A stream the client
abandons is not recorded (it says nothing about the pipeline).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from ..errors import PRSMError
from ._labels import classify_error
from ._recorder import RequestRecorder, _StreamChildren

_now = time.perf_counter


def record_result(
    recorder: RequestRecorder, request: Any, result: Any, *, cached: bool | None = None
) -> None:
    """Record a finished ``handle()``: ``result`` is its ``ExecutionResult`` (``latency``
    the caller's wait, ``timings`` the stages, ``cache`` the tier that answered).
    ``cached`` says whether the cache was consulted (``None``: when ``result.cache`` is set)."""
    timings = result.timings
    response = result.response
    if response is None:
        tokens_in = tokens_out = 0
    else:
        tokens_in = response.input_tokens
        tokens_out = response.output_tokens
        if not (tokens_in or tokens_out):
            tokens_out = response.tokens  # only a total is known
    tier = result.cache
    get = timings.get
    recorder.request(
        request.kind.value,
        request.model,
        request.tenant,
        result.node_id,
        "ok" if tier is None else "cache_hit",
        "",
        result.latency,
        get("upstream", 0.0),
        tokens_in,
        tokens_out,
        tier if tier is not None else ("miss" if cached else None),
        get("cache", -1.0),
        get("route", -1.0),
    )


def record_failure(
    recorder: RequestRecorder, request: Any, exc: BaseException, duration: float
) -> None:
    """Record a ``handle()`` that raised ``exc`` after ``duration`` seconds."""
    node = getattr(exc, "node_id", None)
    recorder.request(
        request.kind.value,
        request.model,
        request.tenant,
        node if isinstance(node, str) else None,
        "error",
        classify_error(exc),
        duration,
    )


class StreamTally(Protocol):
    """What a stream's recording has counted by its end: the recorder and request, the kind's
    label, the kind's stream histograms (``s``), the clock at its start and its first chunk
    (0: none came) and the ``data:`` events seen."""

    recorder: RequestRecorder
    request: Any
    kind: str
    s: _StreamChildren
    start: float
    first: float
    events: int


def record_stream_end(t: StreamTally, tier: str | None = None) -> None:
    """Record the stream ``t`` that ended well: its time per output token (when it had two
    tokens or more) and the request, its output the events less the final ``data: [DONE]``;
    a cache ``tier`` that answered makes it a ``cache_hit``. Shared by :class:`RecordedStream`
    and the streaming driver's meter (whose ``ok`` it is: no call of its own per stream)."""
    end = _now()
    request, recorder, events = t.request, t.recorder, t.events
    output = events - 1 if events else 0  # the final data: [DONE]
    first = t.first
    if output > 1 and first:
        recorder.observe(t.s.tpot, (end - first) / (output - 1))
    recorder.request(
        t.kind, request.model, request.tenant, None, "cache_hit" if tier else "ok", "",
        end - t.start, 0.0, 0, output, tier,
    )  # fmt: skip


def recorded_stream(
    recorder: RequestRecorder, request: Any, chunks: AsyncIterator[bytes]
) -> RecordedStream:
    """``chunks`` passed through unchanged, recorded as they go (see the module docstring)."""
    return RecordedStream(recorder, request, chunks)


class RecordedStream:
    """:func:`recorded_stream`'s chunks. An iterator object, not an async generator: no loop
    bookkeeping per stream (the loop keeps every async generator in a weak set) and no
    generator frame to resume per chunk. ``chunks`` is closed (its ``aclose``) when it ends,
    fails, or this stream is closed; a stream closed before its end is not recorded."""

    __slots__ = ("_chunks", "_ended", "_last", "_line", "_next", "events", "first", "kind",
                 "recorder", "request", "s", "start")  # fmt: skip

    def __init__(
        self, recorder: RequestRecorder, request: Any, chunks: AsyncIterator[bytes]
    ) -> None:
        self.recorder = recorder
        self.request = request
        self._chunks = chunks
        self._next = chunks.__anext__
        self.kind: str = request.kind.value
        self.s = recorder.stream_children(self.kind, request.model)
        self.start = self.first = self._last = 0.0
        self.events = 0
        self._line = True  # the next chunk begins a line
        self._ended = False

    def __aiter__(self) -> RecordedStream:
        return self

    async def __anext__(self) -> bytes:
        if self._ended:
            raise StopAsyncIteration
        if not self.start:
            self.start = _now()
        try:
            chunk = await self._next()
        except StopAsyncIteration:
            self._ended = True
            await self._close_chunks()
            self._finish()
            raise
        except PRSMError as exc:
            self._ended = True
            record_failure(self.recorder, self.request, exc, _now() - self.start)
            await self._close_chunks()
            raise
        except BaseException:
            self._ended = True
            await self._close_chunks()
            raise
        now = _now()
        if not self.first:
            self.first = now
            self.recorder.observe(self.s.ttft, now - self.start)
        else:
            self.recorder.observe(self.s.itl, now - self._last)
        self._last = now
        # ``data:`` at the start of a line only (the answer's text may hold it; see the module)
        self.events += chunk.count(b"\ndata:") + (self._line and chunk.startswith(b"data:"))
        self._line = chunk.endswith(b"\n")
        return chunk

    async def aclose(self) -> None:
        """Stop early (not recorded): ``chunks`` is closed."""
        if not self._ended:
            self._ended = True
            await self._close_chunks()

    async def _close_chunks(self) -> None:
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()

    def _finish(self) -> None:
        record_stream_end(self, getattr(self._chunks, "tier", None))
