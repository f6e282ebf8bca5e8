"""The streaming driver behind :meth:`PerformanceOrchestrator.handle_stream`.

Same routing, breakers and retry policy as the unary driver, with three limits of its own
(settings ``stream_first_token_timeout``, ``stream_idle_timeout``, ``stream_total_timeout``)
and one rule more: once the first chunk has gone to the caller the request is committed to
that node, and a later failure is raised instead of retried.

* Before the first chunk, each attempt waits at most the first-token timeout (and what is left
  of the deadline, and the node's ``timeout``); a miss is the node's failure and the policy
  tries the next node.
* The first attempt's first chunk is hedged like a unary answer (:mod:`._stream_hedge`):
  late past the node's hedge delay, the same request goes to a second node and the first
  to send a chunk is kept, the other closed; same budget, same counts.
* The node's latency — in its histogram and in what the router learns — is the time to the
  first chunk, never the stream's length.
* After it, each wait between chunks is bounded by the idle timeout (a stall: the node's
  failure, raised), and the whole stream by the optional total limit (cut and raised, but
  the node is recorded as healthy). The request's deadline no longer applies: a long,
  healthy stream is never cut by it and never counts against its node. (A resumed stream of
  several choices holds each continuation to these limits itself, :mod:`._merge`: the idle
  wait here is then a backstop, never shorter than the first-token timeout.)

It stays an async generator: an iterator object (as ``RecordedStream``) was measured slower
per chunk here, since each ``async def __anext__`` call makes a coroutine where a generator
resumes its frame. Each chunk after the first is awaited inline instead (stepped by hand, a
deadline armed only when it has not arrived yet: ``benchmarks/stream_chunks.py``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from types import CoroutineType
from typing import Any

from .._awaiting import arm_in, await_with_timeout, disarm, expired, resume
from ..errors import (
    CircuitBreakerOpenError,
    MalformedStreamError,
    PRSMError,
    StreamTimeoutError,
    UpstreamError,
)
from ..monitoring._recorder import RequestRecorder
from ..types import AIRequest
from ..upstreams._base import StreamingUpstream
from ._attempt import Attempt, Pipeline, first_node, is_cancel, next_node
from ._resume import Resumer
from ._retry import RetryState
from ._stream_hedge import First, close_stream, first_chunk_hedged, stream_error
from ._stream_meter import StreamMeter
from ._tape import DONE, Tape, resumable


async def run_stream(
    p: Pipeline,
    upstream: StreamingUpstream,
    request: AIRequest,
    recorder: RequestRecorder | None = None,
) -> AsyncIterator[bytes]:
    """Yield the answer's chunks from the first node that starts one (see the module);
    recorded into ``recorder`` when one is given (:class:`~._stream_meter.StreamMeter`)."""
    meter = None if recorder is None else StreamMeter(recorder, request)
    try:
        monotonic = p.monotonic
        s = p.settings
        m = p.metrics
        start = monotonic()
        budget = request.timeout or s.default_timeout
        deadline = start + budget
        now = start
        node = first_node(p, request, now)
        # the policy's input, made at the first failure (most streams never need it)
        state: RetryState | None = None
        tried_ids: tuple[str, ...] = (node.id,)  # the nodes tried until then
        hedger = p.hedger
        hedge = False
        if hedger is not None:  # every stream request adds to the hedge budget, as a unary one
            tokens = p.hedge_tokens + hedger.ratio  # (hedger.deposit, inline)
            burst = hedger.burst
            p.hedge_tokens = tokens = tokens if tokens < burst else burst
            hedge = tokens >= 1.0  # else no hedge could go: no hedge timer either
        first: bytes | None
        while True:  # until a node sends its first chunk (or the policy stops)
            err: UpstreamError | CircuitBreakerOpenError
            begun = p.begin(node, now)
            if type(begun) is Attempt:
                att = begun
                agen = upstream.stream(node, request)
                wait = min(deadline - now, s.stream_first_token_timeout)
                if node.timeout is not None and node.timeout < wait:
                    wait = node.timeout
                if hedge:  # the first attempt only, raced by a hedge when its chunk is late
                    hedge = False
                    tried: list[str] = []
                    raced = await first_chunk_hedged(p, upstream, request, node, att, agen, now,
                                                     wait, tried)  # fmt: skip
                    if tried:
                        if state is None:
                            tried_ids = (*tried_ids, *tried)
                        else:
                            state = state._replace(tried=(*state.tried, *tried))
                    if raced is None or type(raced) is bytes:  # the first attempt's
                        first = raced
                        break
                    if isinstance(raced, First):  # the hedge's
                        node, att, agen, first = raced
                        break
                    if not isinstance(raced, UpstreamError):  # (a chunk of another type)
                        first = raced
                        break
                    err = raced
                else:
                    try:
                        first = await await_with_timeout(agen.__anext__(), wait)
                    except StopAsyncIteration:
                        first = None
                        break
                    except BaseException as exc:
                        await close_stream(agen)
                        if is_cancel(exc):
                            att.abandon()
                            raise
                        err = stream_error(node.id, exc, "first_token", wait, 0)
                        att.fail(err, monotonic())
                    else:
                        break
            else:
                assert isinstance(begun, CircuitBreakerOpenError)
                err = begun
            hedge = False
            if state is None:
                state = RetryState(deadline, budget, 1, tried_ids, last_error=err)
            else:
                state = state._replace(last_error=err)
            node, state = await next_node(p, request, state, monotonic())
            now = monotonic()

        answered = monotonic()
        att.answered(answered)
        m.latency.observe(answered - start)
        total = s.stream_total_timeout
        ends_at = math.inf if total is None else answered + total
        idle = s.stream_idle_timeout
        chunks = 0
        # the running loop, asked of the first future a chunk waits on (asking the loop itself
        # costs a system call in Python 3.11: ``getpid``)
        loop: asyncio.AbstractEventLoop | None = None
        # a stream that may be resumed elsewhere goes out in whole events (see _resume)
        tape = Tape() if s.stream_max_resumes > 0 and resumable(request) else None
        resumer: Resumer | None = None
        rewrite = False  # a continuation's events are rewritten as the first stream's
        pending = first
        wait, phase = idle, "idle"
        closed = False  # the node's stream ended, or was closed: nothing left to close
        try:
            while pending is not None:  # one node's part of the stream
                try:
                    while True:
                        if tape is None:
                            if meter is not None:
                                meter.chunk(pending)
                            yield pending
                        else:
                            out = tape.take(pending, rewrite)
                            if out:
                                if meter is not None:
                                    meter.chunk(out)
                                yield out
                            if tape.bad is not None:
                                raise MalformedStreamError(node.id, tape.whole_events(), tape.bad)
                        chunks += 1
                        wait, phase = idle, "idle"
                        left = ends_at - monotonic()
                        if left < wait:
                            wait, phase = left, "total"
                        if wait <= 0:  # past the total limit (on the injected clock)
                            ready = _ready(agen)  # an answer that ended already is not cut
                            if ready is None:
                                raise TimeoutError
                            pending = ready
                            continue
                        # await_with_timeout(agen.__anext__(), wait), inline (see _awaiting): a
                        # chunk read already is taken without a coroutine or a deadline
                        call: Any = agen.__anext__()
                        if type(call) is not CoroutineType:
                            call = call.__await__()
                        try:
                            waits_on = call.send(None)
                        except StopIteration as done:
                            got: bytes = done.value
                            pending = got
                            continue
                        if loop is None:
                            loop = (
                                waits_on.get_loop()
                                if type(waits_on) is asyncio.Future
                                else asyncio.get_running_loop()
                            )
                        armed = arm_in(loop, wait)
                        if armed is None:  # not in a task: nothing the tick timers could cancel
                            async with asyncio.timeout(wait):
                                got = await resume(call, waits_on)
                            pending = got
                            continue
                        try:
                            got = await resume(call, waits_on)
                        except asyncio.CancelledError:
                            if expired(armed):
                                raise TimeoutError(f"no answer within {wait}s") from None
                            raise
                        finally:
                            disarm(armed)
                        pending = got
                except StopAsyncIteration:
                    closed = True
                    if tape is not None and tape.tail:
                        rest = tape.rest()
                        if meter is not None:
                            meter.chunk(rest)
                        yield rest
                    break
                except Exception as exc:
                    end = monotonic()
                    limit = idle if phase == "idle" else ends_at - answered
                    err = stream_error(node.id, exc, phase, limit, chunks)
                    if isinstance(err, StreamTimeoutError) and err.phase == "total":
                        att.succeed(end)  # the node was healthy: only our limit cut it
                    else:
                        att.fail(err, end)
                    await close_stream(agen)
                    closed = True
                    if tape is not None and not tape.off and err.retryable:
                        if resumer is None:
                            resumer = Resumer(
                                p, upstream, request, tape, deadline=deadline, ends_at=ends_at,
                                tried=tried_ids if state is None else state.tried,
                            )  # fmt: skip
                        if resumer.finished(node.id, err):
                            if not tape.done:
                                if meter is not None:
                                    meter.chunk(DONE)
                                yield DONE
                            break
                        taken = await resumer.take_over(node.id, err)
                        if taken is not None:
                            node, att, agen, pending, rewrite = taken
                            closed = False
                            if not rewrite:  # continuations merged, each held to its own limits
                                idle = max(idle, s.stream_first_token_timeout)  # (_merge)
                            continue
                    m.error.inc()
                    if err is exc:
                        raise
                    raise err from exc
            if not att.done:  # (a stream that broke after its answer ended was failed already)
                att.succeed(monotonic())
            m.ok.value += 1.0  # (the plain counter's inc(), inline: one call less a stream)
        finally:
            att.abandon()  # cancelled, or the caller went away (no-op once an outcome is recorded)
            if not closed:
                await close_stream(agen)
    except PRSMError as exc:
        if meter is not None:
            meter.failed(exc)
        raise
    if meter is not None:
        meter.ok()


def _ready(agen: AsyncIterator[bytes]) -> bytes | None:
    """``agen``'s next chunk if it is there without a wait (``StopAsyncIteration`` raised if
    the stream has ended), else ``None``, the step given up."""
    call: Any = agen.__anext__()
    if type(call) is not CoroutineType:
        call = call.__await__()
    try:
        call.send(None)
    except StopIteration as done:
        chunk: bytes = done.value
        return chunk
    try:  # give the step up where it waits (an async generator's step must be thrown into:
        call.throw(GeneratorExit)  # closing it alone leaves the generator running)
    except (GeneratorExit, StopIteration, StopAsyncIteration):
        return None
    raise RuntimeError("a stream's step went on after it was given up")
