"""The unary driver: one answer per request, hedged when slow, retried as the policy decides.

:meth:`PerformanceOrchestrator.handle` makes the first attempt (:func:`attempt_once`, also
the post's ``execute_with_monitoring``) on the balancer's pick, through
:func:`attempt_hedged` when hedging is on and the budget has a token; after a failure,
:func:`retry_unary` carries out the retry policy's decisions (:func:`~._attempt.next_node`).
Every attempt is bounded by the deadline and the node's own timeout.

A hedged first attempt runs in the caller's task, as an unhedged one does; the only extra
cost while it answers within its hedge delay is an entry filed in, and taken out of, the
shared tick timers (:mod:`._timers`; no loop timer, no task, no object of its own). When its
delay passes, the hedging policy (:mod:`._hedge`) decides; a hedge runs as a task of its own.
Whichever answers first wins: a winning hedge cancels the caller's task inside the first
attempt's await (that attempt is abandoned: released, ignored by its breaker, and its
elapsed time taught to the router as a lower bound of the node's latency), a winning first
attempt cancels the hedge. A failed attempt does not end the race while the other is out.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import CancelledError, current_task, get_running_loop
from typing import Any

from .._awaiting import arm, await_with_timeout, disarm, expired
from ..clock import SystemClock
from ..errors import CircuitBreakerOpenError, UpstreamError, UpstreamTimeoutError
from ..routing._node import NodeSpec
from ..types import AIRequest, ExecutionResult
from ..upstreams._base import Upstream
from ._attempt import Pipeline, as_upstream_error, is_cancel, next_node
from ._hedge import NoHedge
from ._retry import RetryState
from ._timers import TickTimers

log = logging.getLogger("prsm.performance.orchestrator")


async def attempt_once(
    p: Pipeline,
    upstream: Upstream,
    node: NodeSpec,
    request: AIRequest,
    now: float,
    *,
    deadline: float,
    learn: bool = True,
) -> ExecutionResult:
    """Run ``request`` once on ``node`` (see :class:`~._attempt.Attempt`). Never raises for
    the node's failure: the result has ``ok=False`` and the error (a refused breaker gives
    a :class:`~prsm.performance.errors.CircuitBreakerOpenError`)."""
    att = p.begin(node, now, learn=learn)
    if isinstance(att, CircuitBreakerOpenError):
        return ExecutionResult(request.id, node.id, False, 0.0, error=att)
    timeout = deadline - now
    node_timeout = node.timeout
    if node_timeout is not None and node_timeout < timeout:
        timeout = node_timeout
    call = upstream.execute(node, request)
    armed = arm(timeout)  # the deadline, without a coroutine around the call
    if armed is None:  # not in a task: the standard way
        call = await_with_timeout(call, timeout)
    try:
        response = await call
    except BaseException as exc:
        timed_out = isinstance(exc, TimeoutError) or (
            armed is not None and isinstance(exc, CancelledError) and expired(armed)
        )
        if not timed_out and is_cancel(exc):
            att.abandon()
            raise
        err: UpstreamError
        if timed_out:
            err = UpstreamTimeoutError(node.id, f"no answer within {timeout:.3f}s")
            err.__cause__ = exc
        else:
            err = as_upstream_error(node.id, exc)
        end = p.monotonic()
        att.fail(err, end)
        return ExecutionResult(request.id, node.id, False, end - now, error=err)
    finally:
        if armed is not None:
            disarm(armed)
    end = p.monotonic()
    att.succeed(end)
    return ExecutionResult(request.id, node.id, True, end - now, response=response)


#: What a hedged first attempt files with its timer: (upstream, first node, request, start,
#: deadline). The race itself is made only when the delay passes (most never do).
Waiting = tuple[Upstream, NodeSpec, AIRequest, float, float]


class _Race:
    """A hedged first attempt whose delay passed: the caller's task awaits the first attempt;
    :meth:`fire` may start a hedge task, whose good answer cancels the caller's await."""

    __slots__ = (
        "deadline", "first", "hedge", "hedge_node", "p", "request", "start", "task", "upstream",
        "waiting", "won",
    )  # fmt: skip

    def __init__(self, p: Pipeline, task: asyncio.Task[Any], waiting: Waiting) -> None:
        self.p = p
        self.task = task
        self.upstream, self.first, self.request, self.start, self.deadline = waiting
        self.waiting = True  # the caller is still awaiting the first attempt
        self.hedge: asyncio.Task[ExecutionResult] | None = None
        self.hedge_node: NodeSpec | None = None
        self.won: ExecutionResult | None = None  # the hedge's answer that cancelled the caller

    def fire(self) -> None:
        """The hedge delay passed with the first attempt unanswered: ask the policy."""
        p = self.p
        hedger = p.hedger
        assert hedger is not None
        now = p.monotonic()
        request = self.request
        exclude = (self.first.id,)

        def pick() -> NodeSpec:
            return p.pick(request, now, exclude)

        decision, p.hedge_tokens = hedger.decide(p.hedge_tokens, now, self.deadline, pick)
        m = p.metrics
        if type(decision) is NoHedge:
            m.hedges.labels(f"skipped_{decision.reason}").inc()
            return
        assert not isinstance(decision, NoHedge)
        node = self.hedge_node = decision.node
        m.hedges.labels("sent").inc()
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "request %s: hedging on %s, %s unanswered after %.3fs",
                request.id, node.id, self.first.id, now - self.start,
            )  # fmt: skip
        hedge = asyncio.get_running_loop().create_task(
            attempt_once(p, self.upstream, node, request, now, deadline=self.deadline)
        )
        hedge.add_done_callback(self._hedge_done)
        self.hedge = hedge

    def _hedge_done(self, hedge: asyncio.Task[ExecutionResult]) -> None:
        if hedge.cancelled():
            return
        if hedge.exception() is not None:  # raised past attempt_once: the caller's await sees it
            return
        if hedge.result().ok and self.waiting:
            self.won = hedge.result()
            self.task.cancel()  # lands in the first attempt's await: it is abandoned


def _due(p: Pipeline, task: asyncio.Task[Any], waiting: Waiting) -> None:
    """A hedged first attempt's delay passed (its caller has not resumed since): race."""
    race = p.races[task] = _Race(p, task, waiting)
    race.fire()


async def _sleep_then(p: Pipeline, delay: float, task: asyncio.Task[Any], w: Waiting) -> None:
    await p.clock.sleep(delay)
    _due(p, task, w)


def _later(
    p: Pipeline, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any], w: Waiting, delay: float
) -> asyncio.Task[None]:
    """The hedge timer on a clock other than the system's: a task sleeping on it."""
    return loop.create_task(_sleep_then(p, delay, task, w))


def _stop_timer(
    timers: TickTimers[Any, Any] | None, task: asyncio.Task[Any], timer: int | asyncio.Task[None]
) -> None:
    if isinstance(timer, int):
        assert timers is not None
        timers.discard(task, timer)
    else:
        timer.cancel()


async def attempt_hedged(
    p: Pipeline,
    upstream: Upstream,
    node: NodeSpec,
    request: AIRequest,
    now: float,
    *,
    deadline: float,
) -> tuple[ExecutionResult, tuple[str, ...]]:
    """The first attempt on ``node``, hedged by the policy (see the module): the winning
    result (``attempts`` 2 when a hedge went out) or the last failure, and the nodes tried."""
    hedger = p.hedger
    loop = get_running_loop()
    task = current_task(loop)
    if task is None or hedger is None:  # not in a task: nothing to cancel, so no race
        return await attempt_once(p, upstream, node, request, now, deadline=deadline), (node.id,)
    cancelling = task.cancelling()
    waiting = (upstream, node, request, now, deadline)
    delay = hedger.delay(p.tracker.stats(node.id))
    timers = p.timers
    timer: int | asyncio.Task[None]
    if timers is not None:  # the system clock's shared ticks (inline: this is every request)
        timer = timers.add(loop, task, waiting, delay)
    elif type(p.clock) is SystemClock:
        timers = p.timers = TickTimers(lambda t, w: _due(p, t, w))
        timer = timers.add(loop, task, waiting, delay)
    else:
        timer = _later(p, loop, task, waiting, delay)
    try:
        result = await attempt_once(p, upstream, node, request, now, deadline=deadline)
    except CancelledError:
        _stop_timer(timers, task, timer)
        race = p.races.pop(task, None)
        if race is None:
            raise
        race.waiting = False
        won = race.won
        if won is None or task.uncancel() > cancelling:  # (also) cancelled from outside
            if race.hedge is not None:
                race.hedge.cancel()
            raise
        end = p.monotonic()
        if node.id in p.registry:  # the loser was this slow at least: the router learns it
            p.tracker.record_slow(node.id, end - now, end)
        p.metrics.hedges.labels("won").inc()
        won.attempts = 2
        return won, (node.id, won.node_id or "")
    except BaseException:  # a bug past attempt_once's own handling: leave nothing behind
        _stop_timer(timers, task, timer)
        race = p.races.pop(task, None)
        if race is not None and race.hedge is not None:
            race.hedge.cancel()
        raise
    if timers is not None:
        timers.discard(task, timer)  # type: ignore[arg-type]  # an int with the ticks
    else:
        timer.cancel()  # type: ignore[union-attr]  # a task on other clocks
    race = p.races.pop(task, None) if p.races else None
    if race is None:
        return result, (node.id,)
    race.waiting = False
    hedge = race.hedge
    if hedge is None:
        return result, (node.id,)
    m = p.metrics
    tried = (node.id, race.hedge_node.id if race.hedge_node is not None else "")
    if result.ok:
        if _failed(hedge):
            m.hedges.labels("failed").inc()
        else:
            hedge.cancel()
            m.hedges.labels("cancelled").inc()
        result.attempts = 2
        return result, tried
    try:  # the first attempt failed: the hedge is the answer, unless it fails too
        second = await hedge
    except CancelledError:
        hedge.cancel()
        raise
    if not second.ok:
        m.hedges.labels("failed").inc()
        return second, tried
    m.hedges.labels("won").inc()
    second.attempts = 2
    return second, tried


def _failed(hedge: asyncio.Task[ExecutionResult]) -> bool:
    """Whether the hedge is over and failed (its node's error)."""
    if not hedge.done() or hedge.cancelled() or hedge.exception() is not None:
        return False
    return not hedge.result().ok


async def retry_unary(
    p: Pipeline,
    upstream: Upstream,
    request: AIRequest,
    failed: ExecutionResult,
    deadline: float,
    *,
    tried: tuple[str, ...] | None = None,
) -> ExecutionResult:
    """After the first attempt(s) ``failed`` (on the nodes ``tried``, by default the failed
    one): what the retry policy decides, until an attempt answers (its result returned,
    ``attempts`` set) or the policy stops: the node's error,
    :class:`~prsm.performance.errors.DeadlineExceededError` or a routing error, raised."""
    budget = request.timeout or p.settings.default_timeout
    if tried is None:
        tried = (failed.node_id or "",)
    state = RetryState(deadline, budget, len(tried), tried)
    result = failed
    while True:
        err = result.error
        assert isinstance(err, (UpstreamError, CircuitBreakerOpenError))
        node, state = await next_node(p, request, state._replace(last_error=err), p.monotonic())
        result = await attempt_once(p, upstream, node, request, p.monotonic(), deadline=deadline)
        if result.ok:
            result.attempts = state.attempts
            return result
