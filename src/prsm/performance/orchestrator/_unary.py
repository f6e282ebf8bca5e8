"""The unary driver: one answer per request, retried as the policy decides.

:meth:`PerformanceOrchestrator.handle` makes the first attempt (:func:`attempt_once`, also
the post's ``execute_with_monitoring``) on the balancer's pick; after a failure,
:func:`retry_unary` carries out the retry policy's decisions (:func:`~._attempt.next_node`).
Every attempt is bounded by the deadline and the node's own timeout.
"""

from __future__ import annotations

from asyncio import CancelledError

from .._awaiting import arm, await_with_timeout, disarm, expired
from ..errors import CircuitBreakerOpenError, UpstreamError, UpstreamTimeoutError
from ..routing._node import NodeSpec
from ..types import AIRequest, ExecutionResult
from ..upstreams._base import Upstream
from ._attempt import Pipeline, as_upstream_error, is_cancel, next_node
from ._retry import RetryState


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


async def retry_unary(
    p: Pipeline, upstream: Upstream, request: AIRequest, failed: ExecutionResult, deadline: float
) -> ExecutionResult:
    """After the first attempt ``failed``: what the retry policy decides, until an attempt
    answers (its result returned, ``attempts`` set) or the policy stops: the node's error,
    :class:`~prsm.performance.errors.DeadlineExceededError` or a routing error, raised."""
    budget = request.timeout or p.settings.default_timeout
    state = RetryState(deadline, budget, 1, (failed.node_id or "",))
    result = failed
    while True:
        err = result.error
        assert isinstance(err, (UpstreamError, CircuitBreakerOpenError))
        node, state = await next_node(p, request, state._replace(last_error=err), p.monotonic())
        result = await attempt_once(p, upstream, node, request, p.monotonic(), deadline=deadline)
        if result.ok:
            result.attempts = state.attempts
            return result
