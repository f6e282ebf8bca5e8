"""The streaming pipeline behind :meth:`PerformanceOrchestrator.handle_stream`.

Same routing, breakers and retries as ``handle()``, with one rule more: once the first chunk
has gone to the caller, the request is committed to that node, and a later failure is raised
instead of retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..errors import UpstreamError, UpstreamTimeoutError
from ..types import AIRequest
from ..upstreams._base import StreamingUpstream
from ._attempt import Failure, next_node

if TYPE_CHECKING:
    from ._orchestrator import PerformanceOrchestrator


def _as_upstream_error(node_id: str, exc: BaseException, wait: float) -> UpstreamError:
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, TimeoutError):
        err: UpstreamError = UpstreamTimeoutError(node_id, f"no chunk within {wait:.3f}s")
    else:
        err = UpstreamError(node_id, f"{type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


async def _close(agen: AsyncIterator[bytes]) -> None:
    aclose = getattr(agen, "aclose", None)
    if aclose is not None:
        await aclose()


async def stream_pipeline(
    perf: PerformanceOrchestrator, upstream: StreamingUpstream, request: AIRequest
) -> AsyncIterator[bytes]:
    clock = perf.clock
    m = perf._m
    start = clock.monotonic()
    budget = request.timeout or perf.settings.default_timeout
    deadline = start + budget
    tried: list[str] = []
    attempts = 0
    last: Failure | None = None
    now = start
    while True:
        node = next_node(
            perf, request, now, deadline, budget, tried=tried, attempts=attempts, last=last
        )
        node_id = node.id
        children = m.node(node_id)
        attempts += 1
        breaker = perf.breakers.get(node_id)
        if not breaker.try_acquire(now):
            last = breaker.open_error(now)
            tried.append(node_id)
            now = clock.monotonic()
            continue
        perf.registry.acquire(node_id)
        released = False
        committed = False
        agen = upstream.stream(node, request)
        try:
            wait = deadline - now
            if node.timeout is not None and node.timeout < wait:
                wait = node.timeout
            first: bytes | None
            try:
                async with asyncio.timeout(wait):
                    first = await agen.__anext__()
            except StopAsyncIteration:
                first = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                err = _as_upstream_error(node_id, exc, wait)
                await _close(agen)
                end = clock.monotonic()
                perf.registry.release(node_id)
                released = True
                children.latency.observe(end - now)
                if breaker.counts(err):
                    breaker.record_failure(end)
                    children.failures.inc()
                    perf.tracker.record(node_id, end - now, False, end)
                else:
                    breaker.record_ignored(end)
                if not err.retryable or attempts >= perf.settings.max_attempts:
                    m.error.inc()
                    raise err from exc
                last = err
                tried.append(node_id)
                m.retries.inc()
                now = end
                continue
            committed = True
            if first is not None:
                yield first
                while True:
                    wait = deadline - clock.monotonic()
                    try:
                        async with asyncio.timeout(wait if wait > 0 else 0):
                            chunk = await agen.__anext__()
                    except StopAsyncIteration:
                        break
                    yield chunk
        except (asyncio.CancelledError, GeneratorExit):
            if not released:
                perf.registry.release(node_id)
                released = True
                breaker.record_ignored()
            await _close(agen)
            raise
        except Exception as exc:
            if released:
                raise
            err = _as_upstream_error(node_id, exc, deadline - now)
            end = clock.monotonic()
            perf.registry.release(node_id)
            released = True
            children.latency.observe(end - now)
            breaker.record_exception(err, end)
            if breaker.counts(err):
                children.failures.inc()
                perf.tracker.record(node_id, end - now, False, end)
            m.error.inc()
            await _close(agen)
            if err is exc:
                raise
            raise err from exc
        if committed and not released:
            end = clock.monotonic()
            perf.registry.release(node_id)
            children.latency.observe(end - now)
            breaker.record_success(end)
            perf.tracker.record(node_id, end - now, True, end)
            total = end - start
            m.ok.inc()
            m.latency.observe(total)
        return
