"""The unary driver: one answer per request, retried as the policy decides.

:func:`run_unary` is :meth:`PerformanceOrchestrator.handle` without the cache: the first
attempt on the balancer's pick, then after each failure the retry policy's decision
(:func:`~._attempt.next_node`), every attempt bounded by the deadline and the node's own
timeout. :func:`attempt_once` is one attempt (also the post's ``execute_with_monitoring``).
"""

from __future__ import annotations

from .._awaiting import await_with_timeout
from ..errors import CircuitBreakerOpenError, UpstreamError, UpstreamTimeoutError
from ..routing._node import NodeSpec
from ..types import AIRequest, ExecutionResult
from ..upstreams._base import Upstream
from ._attempt import Pipeline, as_upstream_error, first_node, is_cancel, next_node
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
    try:
        response = await await_with_timeout(upstream.execute(node, request), timeout)
    except BaseException as exc:
        if is_cancel(exc):
            att.abandon()
            raise
        err: UpstreamError
        if isinstance(exc, TimeoutError):
            err = UpstreamTimeoutError(node.id, f"no answer within {timeout:.3f}s")
            err.__cause__ = exc
        else:
            err = as_upstream_error(node.id, exc)
        end = p.clock.monotonic()
        att.fail(err, end)
        return ExecutionResult(request.id, node.id, False, end - now, error=err)
    end = p.clock.monotonic()
    att.succeed(end)
    return ExecutionResult(request.id, node.id, True, end - now, response=response)


async def run_unary(
    p: Pipeline, upstream: Upstream, request: AIRequest, start: float
) -> ExecutionResult:
    """The answering attempt's result (``attempts`` set), or the error the policy stopped
    with: the node's, :class:`~prsm.performance.errors.DeadlineExceededError`, or a routing
    error when no node can serve the request."""
    budget = request.timeout or p.settings.default_timeout
    deadline = start + budget
    node = first_node(p, request, start)
    result = await attempt_once(p, upstream, node, request, start, deadline=deadline)
    if result.ok:
        return result
    state = RetryState(deadline, budget, 1, (node.id,))
    while True:
        err = result.error
        assert isinstance(err, (UpstreamError, CircuitBreakerOpenError))
        node, state = await next_node(
            p, request, state._replace(last_error=err), p.clock.monotonic()
        )
        result = await attempt_once(
            p, upstream, node, request, p.clock.monotonic(), deadline=deadline
        )
        if result.ok:
            result.attempts = state.attempts
            return result
