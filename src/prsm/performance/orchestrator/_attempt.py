"""What :meth:`~prsm.performance.orchestrator.PerformanceOrchestrator.handle` and the stream
pipeline share: picking the next node within the deadline, and one attempt on a node through
its breaker.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .._awaiting import await_with_timeout
from ..errors import (
    CircuitBreakerOpenError,
    DeadlineExceededError,
    NoCapableNodesError,
    UpstreamError,
    UpstreamTimeoutError,
)
from ..routing._node import NodeSpec
from ..types import AIRequest, ExecutionResult, Response
from ..upstreams._base import Upstream

if TYPE_CHECKING:
    from ._orchestrator import PerformanceOrchestrator

#: Why an attempt failed: the node's error, or its breaker refusing the call.
Failure = UpstreamError | CircuitBreakerOpenError


def retryable(err: BaseException) -> bool:
    """Whether another node may be tried after ``err`` (a refused breaker, or an upstream
    error marked retryable: 5xx, 429, timeouts, connection errors)."""
    if isinstance(err, CircuitBreakerOpenError):
        return True
    return isinstance(err, UpstreamError) and err.retryable


def next_node(
    perf: PerformanceOrchestrator,
    request: AIRequest,
    now: float,
    deadline: float,
    budget: float,
    *,
    tried: list[str] | None,
    attempts: int,
    last: Failure | None,
) -> NodeSpec:
    """The node to try next (its pick counted), excluding ``tried``.

    Raises :class:`DeadlineExceededError` once ``deadline`` has passed; when no capable node
    is left, the ``last`` failure, or :class:`NoCapableNodesError` / ``UnknownModelError``
    when nothing was tried. Both count as the request's error.
    """
    m = perf._m
    if now >= deadline:
        m.error.inc()
        raise DeadlineExceededError(budget, attempts, last)
    try:
        node = perf.balancer.pick(request, now, tried)
    except NoCapableNodesError:
        m.error.inc()
        if last is not None:
            raise last from None
        raise
    m.node(node.id).picks.inc()
    return node


async def attempt(
    perf: PerformanceOrchestrator,
    upstream: Upstream,
    node: NodeSpec,
    request: AIRequest,
    now: float,
    *,
    deadline: float,
) -> ExecutionResult:
    """Run ``request`` once on ``node`` through its breaker, counted in flight, bounded by
    ``deadline`` and the node's own timeout; its latency, failures and breaker outcome
    recorded. Never raises for an upstream failure: the result has ``ok=False``."""
    node_id = node.id
    breaker = perf.breakers.get(node_id)
    if not breaker.try_acquire(now):
        return ExecutionResult(request.id, node_id, False, 0.0, error=breaker.open_error(now))
    registry = perf.registry
    registry.acquire(node_id)
    timeout = deadline - now
    if node.timeout is not None and node.timeout < timeout:
        timeout = node.timeout
    error: UpstreamError | None = None
    response: Response | None = None
    try:
        response = await await_with_timeout(upstream.execute(node, request), timeout)
    except TimeoutError as exc:
        error = UpstreamTimeoutError(node_id, f"no answer within {timeout:.3f}s")
        error.__cause__ = exc
    except UpstreamError as exc:
        error = exc
    except asyncio.CancelledError:
        registry.release(node_id)
        breaker.record_ignored()
        raise
    except Exception as exc:  # an upstream broke its protocol: counted as its failure
        error = UpstreamError(node_id, f"{type(exc).__name__}: {exc}")
        error.__cause__ = exc
    end = perf.clock.monotonic()
    registry.release(node_id)
    latency = end - now
    children = perf._m.node(node_id)
    children.latency.observe(latency)
    if error is None:
        breaker.record_success(end)
        return ExecutionResult(request.id, node_id, True, latency, response=response)
    if breaker.counts(error):
        breaker.record_failure(end)
        children.failures.inc()
    else:
        breaker.record_ignored(end)
    return ExecutionResult(request.id, node_id, False, latency, error=error)
