"""The unary driver: one answer per request, hedged when slow, retried as the policy decides.

:meth:`PerformanceOrchestrator.handle` makes the first attempt (:func:`attempt_once`, also
the post's ``execute_with_monitoring``) on the balancer's pick, through
:func:`attempt_hedged` when hedging is on and the budget has a token; after a failure,
:func:`retry_unary` carries out the retry policy's decisions (:func:`~._attempt.next_node`).
Every attempt is bounded by the deadline and the node's own timeout.

A hedged first attempt runs in the caller's task, as an unhedged one does; the only extra
cost while it answers within its hedge delay is one loop timer, armed and cancelled. When the
timer fires, the hedging policy (:mod:`._hedge`) decides; a hedge runs as a task of its own.
Whichever answers first wins: a winning hedge cancels the caller's task inside the first
attempt's await (that attempt is abandoned: released, ignored by its breaker, and its
elapsed time taught to the router as a lower bound of the node's latency), a winning first
attempt cancels the hedge. A failed attempt does not end the race while the other is out.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import CancelledError

from .._awaiting import arm, await_with_timeout, disarm, expired
from ..errors import CircuitBreakerOpenError, UpstreamError, UpstreamTimeoutError
from ..routing._node import NodeSpec
from ..types import AIRequest, ExecutionResult
from ..upstreams._base import Upstream
from ._attempt import Pipeline, as_upstream_error, is_cancel, next_node
from ._hedge import NoHedge
from ._retry import RetryState

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


class _Race:
    """A hedged first attempt: the caller's task awaits the first attempt; :meth:`fire` (the
    hedge timer) may start a hedge task, whose good answer cancels the caller's await."""

    __slots__ = (
        "deadline", "first", "hedge", "hedge_node", "p", "request", "start", "task", "upstream",
        "waiting", "won",
    )  # fmt: skip

    def __init__(self, p: Pipeline, upstream: Upstream, request: AIRequest, first: NodeSpec, *,
                 task: asyncio.Task[object], start: float, deadline: float) -> None:  # fmt: skip
        self.p = p
        self.start = start
        self.upstream = upstream
        self.request = request
        self.first = first
        self.task = task
        self.deadline = deadline
        self.waiting = True  # the caller is still awaiting the first attempt
        self.hedge: asyncio.Task[ExecutionResult] | None = None
        self.hedge_node: NodeSpec | None = None
        self.won: ExecutionResult | None = None  # the hedge's answer that cancelled the caller

    def fire(self) -> None:
        """The hedge delay passed with the first attempt unanswered: ask the policy."""
        if not self.waiting:
            return
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
    task = asyncio.current_task()
    if task is None or hedger is None:  # not in a task: nothing to cancel, so no race
        return await attempt_once(p, upstream, node, request, now, deadline=deadline), (node.id,)
    race = _Race(p, upstream, request, node, task=task, start=now, deadline=deadline)
    cancelling = task.cancelling()
    timer = p.later(hedger.delay(p.tracker.stats(node.id)), race.fire)
    m = p.metrics
    try:
        result = await attempt_once(p, upstream, node, request, now, deadline=deadline)
    except CancelledError:
        race.waiting = False
        timer.cancel()
        won = race.won
        if won is None or task.uncancel() > cancelling:  # (also) cancelled from outside
            if race.hedge is not None:
                race.hedge.cancel()
            raise
        end = p.monotonic()
        if node.id in p.registry:  # the loser was this slow at least: the router learns it
            p.tracker.record_slow(node.id, end - now, end)
        m.hedges.labels("won").inc()
        won.attempts = 2
        return won, (node.id, won.node_id or "")
    race.waiting = False
    timer.cancel()
    hedge = race.hedge
    if hedge is None:
        return result, (node.id,)
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
