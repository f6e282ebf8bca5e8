"""Recording what the pipeline answered: one call for a finished ``handle()``, one wrapper for
a stream. Used by the orchestrator, so library callers and the gateway are recorded alike.

Streams: the time to the first chunk, each gap between chunks, and the output size, counted
as the stream's ``data:`` events less the final ``[DONE]`` (an OpenAI-compatible server sends
one event per generated token by default, so this is the output token count as vLLM reports
it; a server that batches tokens into events makes it a lower bound). A stream the client
abandons is not recorded (it says nothing about the pipeline).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from ..errors import PRSMError
from ._recorder import RequestRecorder, classify_error

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


async def recorded_stream(
    recorder: RequestRecorder, request: Any, chunks: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """``chunks`` passed through unchanged, recorded as they go (see the module docstring)."""
    kind = request.kind.value
    s = recorder.stream_children(kind, request.model)
    observe = recorder.observe
    start = _now()
    first = last = 0.0
    events = 0
    try:
        async for chunk in chunks:
            now = _now()
            if not first:
                first = now
                observe(s.ttft, now - start)
            else:
                observe(s.itl, now - last)
            last = now
            events += chunk.count(b"data:")
            yield chunk
    except PRSMError as exc:
        record_failure(recorder, request, exc, _now() - start)
        raise
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    end = _now()
    tier = getattr(chunks, "tier", None)
    output = max(0, events - 1)  # the final data: [DONE]
    if output > 1 and first:
        observe(s.tpot, (end - first) / (output - 1))
    recorder.request(
        kind, request.model, request.tenant, None, "cache_hit" if tier else "ok", "",
        end - start, 0.0, 0, output, tier,
    )  # fmt: skip
