"""The unary driver: one answer per request, hedged when slow, retried as the policy decides.

:meth:`PerformanceOrchestrator.handle` makes the first attempt on the balancer's pick
(:func:`attempt_first`: hedged when hedging is on and the budget has a token); after a
failure, :func:`retry_unary` carries out the retry policy's decisions
(:func:`~._attempt.next_node`), each try an :func:`attempt_once` (also the post's
``execute_with_monitoring``). Every attempt is bounded by the deadline and the node's own
timeout.

An attempt first steps the upstream's call by hand: a call that answers without suspending
(an in-process upstream, a cache-like node) is done there, with no deadline, no hedge timer
and no other coroutine around it (its time could not be bounded anyway: nothing else runs
while it does). A call that suspends gets one entry in the loop's shared tick timers
(:func:`~prsm.performance._awaiting.loop_timers`; no loop timer, no task of its own): a
hedged first attempt's entry fires first at its hedge delay, when the hedging policy
(:mod:`._hedge`) decides and the entry is filed again at the deadline; any other fires at
the deadline only. A hedge runs as a task of its own. Whichever answers first wins: a winning
hedge cancels the caller's task inside the first attempt's await (that attempt is abandoned:
released, ignored by its breaker, and its elapsed time taught to the router as a lower bound
of the node's latency), a winning first attempt cancels the hedge. A failed attempt does not
end the race while the other is out. On a clock other than the system's (a test's manual
clock) the hedge delay is a task sleeping on that clock.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import CancelledError, Future, current_task, get_running_loop
from collections.abc import Awaitable
from types import CoroutineType
from typing import Any

from .._awaiting import Armed, disarm, expired, loop_timers, resume
from ..errors import CircuitBreakerOpenError, UpstreamError, UpstreamTimeoutError
from ..routing._node import NodeSpec
from ..types import AIRequest, ExecutionResult, Response
from ..upstreams._base import Upstream
from ._attempt import Attempt, Pipeline, as_upstream_error, hedge_to, is_cancel, next_node
from ._retry import RetryState

log = logging.getLogger("prsm.performance.orchestrator")

#: The nodes a first attempt tried (the first, and the hedge's when one went out): the
#: retry policy's starting point after it failed. ``None``: the first node only.
Tried = tuple[str, ...] | None


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
    result, _ = await attempt_first(
        p, upstream, node, request, now, deadline=deadline, learn=learn, hedge=False
    )
    return result


async def attempt_first(
    p: Pipeline,
    upstream: Upstream,
    node: NodeSpec,
    request: AIRequest,
    now: float,
    *,
    deadline: float,
    learn: bool = True,
    hedge: bool = True,
) -> tuple[ExecutionResult, Tried]:
    """:func:`attempt_once`, hedged by the policy if ``hedge`` (see the module) and it has
    to wait: the winning result (``attempts`` 2 when a hedge went out) or the last failure,
    and the nodes tried."""
    att = p.begin(node, now, learn=learn)
    if type(att) is not Attempt:
        assert isinstance(att, CircuitBreakerOpenError)
        return ExecutionResult(request.id, node.id, False, 0.0, error=att), None
    call: Any = upstream.execute(node, request)
    if type(call) is not CoroutineType:  # another awaitable: stepped as a coroutine
        call = _awaited(call)
    try:
        waits_on = call.send(None)  # runs the call up to where it first waits, if it does
    except StopIteration as answered:  # it answered without waiting: nothing to time
        end = p.monotonic()
        att.succeed(end)
        return ExecutionResult(request.id, node.id, True, end - now, response=answered.value), None
    except BaseException as exc:
        if is_cancel(exc):
            att.abandon()
            raise
        return _failed(p, att, node, request, now, as_upstream_error(node.id, exc)), None
    # the call waits on ``waits_on``: the rest of the attempt, under its deadline (the node's
    # own timeout if shorter) and, if ``hedge``, raced by a hedge after its delay (in this
    # coroutine, not one more: the hot path)
    timeout = deadline - now
    node_timeout = node.timeout
    if node_timeout is not None and node_timeout < timeout:
        timeout = node_timeout
    # the loop of the future the call waits on is the running one (a task refuses any other):
    # asking the loop for it saves a system call (``getpid``, in Python 3.11) a request
    loop = waits_on.get_loop() if type(waits_on) is Future else get_running_loop()
    task = current_task(loop)
    if task is None:  # driven by hand: there is no task for a deadline to cancel
        call.close()
        att.abandon()
        raise RuntimeError("an upstream call that waits must run in an asyncio task")
    timers = loop_timers(loop)
    sleeper: asyncio.Task[None] | None = None
    delay = timeout
    deadline_at = 0.0  # (given when the watch is made: a struct's field set later costs more)
    if hedge:
        hedger = p.hedger
        assert hedger is not None
        delay = hedger.delay(p.tracker.stats(node.id))
        if delay >= timeout:  # the deadline comes first: no race
            delay = timeout
        elif p.system_clock:
            deadline_at = loop.time() + timeout
    watch = _Watch(timers, task, 0, task.cancelling(), False, p,
                   (upstream, node, request, now, deadline), deadline_at)  # fmt: skip
    if delay < timeout and deadline_at == 0.0:  # a hedge timer on this clock; the deadline
        sleeper = loop.create_task(_sleep_then(p, delay, watch))  # in the ticks
        delay = timeout
    watch.tick = timers.add(loop, watch, None, delay)
    try:
        response = await resume(call, waits_on)
    except BaseException as exc:
        result = _raised(p, att, watch, node, request, now, timeout, exc)
    else:
        end = p.monotonic()
        att.succeed(end)
        result = ExecutionResult(request.id, node.id, True, end - now, response=response)
    finally:
        disarm(watch)
        if sleeper is not None:
            sleeper.cancel()
    race = watch.race
    if race is None:
        return result, None
    if result is race.won:  # the hedge won: the first attempt was abandoned
        return result, (node.id, result.node_id or "")
    return await _after_race(p, race, node, result)


async def _awaited(awaitable: Awaitable[Response]) -> Response:
    return await awaitable


def _failed(  # noqa: PLR0917 (positional: the hot path)
    p: Pipeline, att: Attempt, node: NodeSpec, request: AIRequest, now: float, err: UpstreamError
) -> ExecutionResult:
    end = p.monotonic()
    att.fail(err, end)
    return ExecutionResult(request.id, node.id, False, end - now, error=err)


#: What a first attempt's watch carries for a race: (upstream, first node, request, start,
#: deadline). The race itself is made only when the hedge delay passes (most never do).
Waiting = tuple[Upstream, NodeSpec, AIRequest, float, float]


class _Watch(Armed):
    """The deadline of an attempt whose call waits, one entry in the loop's tick timers.
    A hedged first attempt's entry fires first at its hedge delay (``deadline_at`` set: the
    deadline's loop time), starts the race there and is filed again at the deadline."""

    p: Pipeline
    waiting: Waiting
    deadline_at: float = 0.0
    race: _Race | None = None

    def fire(self) -> None:
        at = self.deadline_at
        if at == 0.0:  # the deadline
            self.fired = True
            self.task.cancel()
            return
        self.deadline_at = 0.0  # the hedge delay: the deadline next, then the race
        loop = get_running_loop()
        self.tick = self.timers.add(loop, self, None, at - loop.time())
        self.start_race()

    def start_race(self) -> None:
        """The hedge delay passed (the caller has not resumed since): race."""
        race = self.race = _Race(self.p, self.task, self.waiting)
        race.fire()


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
        now = p.monotonic()
        request = self.request
        node = hedge_to(p, request, self.first.id, now, self.deadline)
        if node is None:
            return
        self.hedge_node = node
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


async def _sleep_then(p: Pipeline, delay: float, watch: _Watch) -> None:
    await p.clock.sleep(delay)
    watch.start_race()


def _raised(  # noqa: PLR0917
    p: Pipeline,
    att: Attempt,
    watch: _Watch,
    node: NodeSpec,
    request: AIRequest,
    now: float,
    timeout: float,
    exc: BaseException,
) -> ExecutionResult:
    """The call raised ``exc``: the attempt's failure (a timeout, or the node's error), the
    hedge's answer when it won (the first attempt abandoned), or ``exc`` raised again when
    the caller was cancelled from outside."""
    race = watch.race
    timed_out = isinstance(exc, TimeoutError) or (
        isinstance(exc, CancelledError) and watch.fired and expired(watch)
    )
    if not timed_out and is_cancel(exc):
        att.abandon()
        won = race.won if race is not None else None
        if (
            won is None
            or not isinstance(exc, CancelledError)
            or watch.task.uncancel() > watch.cancelling  # (also) cancelled from outside
        ):
            if race is not None:
                race.waiting = False
                if race.hedge is not None:
                    race.hedge.cancel()
            raise exc
        assert race is not None
        race.waiting = False
        end = p.monotonic()
        if node.id in p.registry:  # the loser was this slow at least: the router learns it
            p.tracker.record_slow(node.id, end - now, end)
        p.metrics.hedges.labels("won").inc()
        won.attempts = 2
        return won
    err: UpstreamError
    if timed_out:
        err = UpstreamTimeoutError(node.id, f"no answer within {timeout:.3f}s")
        err.__cause__ = exc
    else:
        err = as_upstream_error(node.id, exc)
    return _failed(p, att, node, request, now, err)


async def _after_race(
    p: Pipeline, race: _Race, node: NodeSpec, result: ExecutionResult
) -> tuple[ExecutionResult, Tried]:
    """The first attempt ended with ``result`` after its hedge delay: the hedge (if one went
    out) is cancelled when it answered, awaited when it failed."""
    race.waiting = False
    hedge = race.hedge
    if hedge is None:
        return result, None
    m = p.metrics
    tried = (node.id, race.hedge_node.id if race.hedge_node is not None else "")
    if result.ok:
        if _hedge_failed(hedge):
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


def _hedge_failed(hedge: asyncio.Task[ExecutionResult]) -> bool:
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
    tried: Tried = None,
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
