"""First-token hedging for streams: when a stream's first chunk has not come within the hedge
delay, the same request goes to a second node, and whichever sends a first chunk first is
kept; the other is cancelled (its attempt abandoned, its stream closed: the connection too).

The unary hedging's semantics (:mod:`._unary`, README "Hedged requests"): the same policy
(:class:`~._hedge.HedgePolicy`: the node's delay, the shared token budget, which every stream
request also fills), the same counts in ``prsm_orchestrator_hedges_total`` (``sent``,
``won``, ``cancelled``, ``failed``, ``skipped_*``), only the first attempt is hedged, the
router learns that a first attempt that lost was slow at least that long, and a first
attempt that fails while the hedge is out waits for the hedge (when both fail, the retry
policy goes on with both nodes tried). As in the unary driver the first chunk is awaited in
the caller's task: one that is read already costs no timer; one that waits files one entry
in the loop's tick timers (or, on an injected clock, a sleeper task) for the hedge delay, and
the hedge's task exists only once that delay has passed.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import Future
from collections.abc import AsyncIterator
from types import CoroutineType
from typing import Any, NamedTuple

from .._awaiting import Armed, await_with_timeout, disarm, expired, loop_timers, resume
from ..errors import StreamTimeoutError, UpstreamError
from ..routing._node import NodeSpec
from ..types import AIRequest
from ..upstreams._base import StreamingUpstream
from ._attempt import Attempt, Pipeline, as_upstream_error, hedge_to, is_cancel

log = logging.getLogger(__name__)


class First(NamedTuple):
    """The attempt that sent the first chunk (``chunk`` ``None``: an empty stream)."""

    node: NodeSpec
    att: Attempt
    agen: AsyncIterator[bytes]
    chunk: bytes | None


async def close_stream(agen: AsyncIterator[bytes]) -> None:
    """Close a node's stream (its connection too) if it can be closed."""
    aclose = getattr(agen, "aclose", None)
    if aclose is not None:
        await aclose()


def stream_error(node_id: str, exc: BaseException, phase: str, seconds: float,
                 chunks: int) -> UpstreamError:  # fmt: skip
    """``exc`` as the node's error: a timeout as a :class:`StreamTimeoutError` of ``phase``."""
    if isinstance(exc, TimeoutError):
        err: UpstreamError = StreamTimeoutError(
            node_id, phase, seconds, chunks, f"orchestrator.stream_{phase}_timeout"
        )
        err.__cause__ = exc
        return err
    return as_upstream_error(node_id, exc)


#: What a first attempt's watch carries for a race: (upstream, first node, request, start,
#: first-token limit). The race itself is made only when the hedge delay passes (most never do).
Waiting = tuple[StreamingUpstream, NodeSpec, AIRequest, float, float]


class _Watch(Armed):
    """The first attempt's timer entry: it fires at the hedge delay (``limit_at`` set: the
    race starts, and the entry is filed again at the first-token limit), then at that limit
    (the caller's await is cancelled: a timeout)."""

    p: Pipeline
    waiting: Waiting
    limit_at: float = 0.0  # on the system clock: the limit's loop time, once the delay fires
    race: _Race | None = None

    def fire(self) -> None:
        at = self.limit_at
        if at == 0.0:  # the first-token limit
            self.fired = True
            self.task.cancel()
            return
        self.limit_at = 0.0
        loop = self.task.get_loop()
        self.tick = self.timers.add(loop, self, None, at - loop.time())
        self.start_race()

    def start_race(self) -> None:
        """The hedge delay passed (the caller has not resumed since): race."""
        race = self.race = _Race(self.p, self.task, self.waiting)
        race.race()


class _Race:
    """A first attempt whose hedge delay passed with no first chunk: :meth:`race` may start a
    hedge task, whose first chunk cancels the caller's await."""

    __slots__ = ("first", "hedge", "hedge_node", "p", "request", "start", "task", "upstream",
                 "wait", "waiting", "won")  # fmt: skip

    def __init__(self, p: Pipeline, task: asyncio.Task[Any], waiting: Waiting) -> None:
        self.p = p
        self.task = task
        self.upstream, self.first, self.request, self.start, self.wait = waiting
        self.waiting = True  # the caller still awaits the first attempt's chunk
        self.hedge: asyncio.Task[First | None] | None = None
        self.hedge_node: NodeSpec | None = None
        self.won: First | None = None

    def race(self) -> None:
        """The hedge delay passed with no first chunk: ask the policy."""
        p = self.p
        now = p.monotonic()
        request = self.request
        limit = self.start + self.wait
        node = hedge_to(p, request, self.first.id, now, limit)
        if node is None:
            return
        self.hedge_node = node
        log.debug(
            "request %s: hedging the stream on %s, no first chunk from %s after %.3fs",
            request.id, node.id, self.first.id, now - self.start,
        )  # fmt: skip
        hedge = self.task.get_loop().create_task(_hedge(self, node, now, limit - now))
        hedge.add_done_callback(self._hedge_done)
        self.hedge = hedge

    def _hedge_done(self, hedge: asyncio.Task[First | None]) -> None:
        if hedge.cancelled() or hedge.exception() is not None:
            return
        won = hedge.result()
        if won is not None and self.waiting:
            self.won = won
            self.task.cancel()  # lands in the first attempt's await: it is abandoned


async def _hedge(race: _Race, node: NodeSpec, now: float, wait: float) -> First | None:
    """The hedge: its first chunk (``None`` when it failed, counted against its node)."""
    p = race.p
    begun = p.begin(node, now)
    if type(begun) is not Attempt:
        return None
    att = begun
    agen = race.upstream.stream(node, race.request)
    if node.timeout is not None and node.timeout < wait:
        wait = node.timeout
    try:
        chunk: bytes | None = await await_with_timeout(agen.__anext__(), wait)
    except StopAsyncIteration:
        chunk = None
    except BaseException as exc:
        await close_stream(agen)
        if is_cancel(exc):
            att.abandon()
            raise
        att.fail(stream_error(node.id, exc, "first_token", wait, 0), p.monotonic())
        return None
    return First(node, att, agen, chunk)


async def _sleep_then(p: Pipeline, delay: float, watch: _Watch) -> None:
    await p.clock.sleep(delay)
    watch.start_race()


async def first_chunk_hedged(  # noqa: PLR0917
    p: Pipeline,
    upstream: StreamingUpstream,
    request: AIRequest,
    node: NodeSpec,
    att: Attempt,
    agen: AsyncIterator[bytes],
    now: float,
    wait: float,
    tried: list[str],
) -> bytes | First | UpstreamError | None:
    """The first chunk of ``agen`` (the first attempt, on ``node``, begun at ``now``) within
    ``wait`` seconds, hedged as the module says: the chunk when the first attempt sent it
    (``None``: its stream was empty), the hedge's attempt when the hedge did, or the first
    attempt's error (recorded, its stream closed) when no hedge answered either; the nodes
    tried are then in ``tried`` (the first's and the hedge's, when one went out). A
    cancellation of the caller abandons and closes both and is raised."""
    call: Any = agen.__anext__()
    if type(call) is not CoroutineType:
        call = call.__await__()
    try:
        waits_on = call.send(None)
    except StopIteration as done:
        chunk: bytes | None = done.value
        return chunk
    except StopAsyncIteration:
        return None
    except BaseException as exc:
        return await _first_failed(p, node, att, agen, exc, wait)
    # the loop of the future the chunk waits on is the running one: asking the loop for it
    # saves a system call (``getpid``, in Python 3.11) a stream
    loop = waits_on.get_loop() if type(waits_on) is Future else asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    if task is None:
        call.close()
        raise RuntimeError("a stream's first chunk that waits must be awaited in an asyncio task")
    hedger = p.hedger
    assert hedger is not None
    delay = hedger.delay(p.tracker.stats(node.id))
    sleeper: asyncio.Task[None] | None = None
    limit_at = 0.0  # (given when the watch is made: a struct's field set later costs more)
    if delay >= wait:  # the limit comes first: no race
        delay = wait
    elif p.system_clock:
        limit_at = loop.time() + wait
    timers = loop_timers(loop)
    watch = _Watch(timers, task, 0, task.cancelling(), False, p,
                   (upstream, node, request, now, wait), limit_at)  # fmt: skip
    if delay < wait and limit_at == 0.0:  # a hedge timer on this clock; the limit in the ticks
        sleeper = loop.create_task(_sleep_then(p, delay, watch))
        delay = wait
    watch.tick = timers.add(loop, watch, None, delay)
    failure: BaseException | None = None
    timed_out = False
    try:
        chunk = await resume(call, waits_on)
    except StopAsyncIteration:
        chunk = None
    except BaseException as exc:
        failure = exc
        timed_out = isinstance(exc, TimeoutError) or (
            isinstance(exc, asyncio.CancelledError) and watch.fired and expired(watch)
        )
    finally:  # before any wait for the hedge: the limit may not cancel that wait
        disarm(watch)
        if sleeper is not None:
            sleeper.cancel()
    race = watch.race
    if race is not None:
        race.waiting = False
    if failure is not None:
        return await _first_raised(p, watch, node, att, agen, now, failure, timed_out, tried)
    if race is not None and race.hedge is not None:
        await _drop_hedge(p, race, tried)
    return chunk


async def _first_failed(  # noqa: PLR0917
    p: Pipeline, node: NodeSpec, att: Attempt, agen: AsyncIterator[bytes], exc: BaseException,
    wait: float,
) -> UpstreamError:  # fmt: skip
    """The first attempt raised ``exc``: closed; a cancellation abandons it and is raised,
    anything else fails it (its error returned)."""
    await close_stream(agen)
    if is_cancel(exc):
        att.abandon()
        raise exc
    err = stream_error(node.id, exc, "first_token", wait, 0)
    att.fail(err, p.monotonic())
    return err


async def _drop_hedge(p: Pipeline, race: _Race, tried: list[str], *, count: bool = True) -> None:
    """The first attempt sent its chunk first (or the caller went away: ``count`` false): the
    hedge is cancelled (its attempt abandoned, its stream closed), or counted as failed when
    it failed already."""
    hedge = race.hedge
    assert hedge is not None
    if race.hedge_node is not None:
        tried.append(race.hedge_node.id)
    outcome = "cancelled"
    if hedge.done() and not hedge.cancelled() and hedge.exception() is None:
        second = hedge.result()
        if second is None:
            outcome = "failed"
        else:
            second.att.abandon()  # it answered too, just after: let go
            await close_stream(second.agen)
    else:
        hedge.cancel()  # its task abandons its attempt and closes its stream
    if count:
        p.metrics.hedges.labels(outcome).inc()


async def _first_raised(  # noqa: PLR0917
    p: Pipeline, watch: _Watch, node: NodeSpec, att: Attempt, agen: AsyncIterator[bytes],
    now: float, exc: BaseException, timed_out: bool, tried: list[str],
) -> First | UpstreamError:  # fmt: skip
    """The first attempt's wait ended with ``exc``: the hedge won (the first let go), the
    first failed (the hedge, if out, is awaited), or the caller was cancelled (both let go,
    raised)."""
    race = watch.race
    hedge = race.hedge if race is not None else None
    wait = watch.waiting[4]
    if not timed_out and is_cancel(exc):
        won = race.won if race is not None else None
        if (
            won is None
            or not isinstance(exc, asyncio.CancelledError)
            or watch.task.uncancel() > watch.cancelling  # (also) cancelled from outside
        ):
            if race is not None and hedge is not None:
                await _drop_hedge(p, race, tried, count=False)
            await close_stream(agen)
            att.abandon()
            raise exc
        att.abandon()  # the hedge won: the first attempt is let go, its stream closed
        await close_stream(agen)
        end = p.monotonic()
        if node.id in p.registry:  # the loser was this slow at least: the router learns it
            p.tracker.record_slow(node.id, end - now, end)
        p.metrics.hedges.labels("won").inc()
        tried.append(won.node.id)
        return won
    if timed_out and not isinstance(exc, TimeoutError):
        exc = TimeoutError(f"no first chunk within {wait}s")
    err = await _first_failed(p, node, att, agen, exc, wait)
    if race is None or hedge is None:
        return err
    if race.hedge_node is not None:
        tried.append(race.hedge_node.id)
    try:  # the first attempt failed: the hedge is the answer, unless it fails too
        second = await hedge
    except asyncio.CancelledError:
        hedge.cancel()
        raise
    if second is None:
        p.metrics.hedges.labels("failed").inc()
        return err
    p.metrics.hedges.labels("won").inc()
    return second
