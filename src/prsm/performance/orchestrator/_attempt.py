"""One attempt of a request on one node: the bookkeeping the unary and streaming drivers share.

:class:`Pipeline` holds the parts an attempt touches (registry, balancer, breakers, tracker,
metrics, clock, retry policy, settings), so the drivers need nothing from the orchestrator
itself. :meth:`Pipeline.begin` asks the node's breaker and counts the request in flight;
the :class:`Attempt` it returns then records exactly one outcome:

* :meth:`Attempt.answered` — the node answered (a stream: its first chunk); the time it took
  is the node's latency (histogram, and what the router learns);
* :meth:`Attempt.succeed` — done: released, breaker success, learned;
* :meth:`Attempt.fail` — the node failed: released, and if the error counts against the
  node (the breaker's predicate: not a client's 4xx, not a stream's total limit) breaker
  failure, ``node_failures_total`` and a failure learned; else ignored by the breaker;
* :meth:`Attempt.abandon` — cancelled, or the caller went away: released, ignored.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection

import msgspec

from ..clock import Clock, SystemClock
from ..errors import CircuitBreakerOpenError, RoutingError, UpstreamError
from ..resilience._breaker import BreakerSet, CircuitBreaker
from ..routing._balancer import AILoadBalancer
from ..routing._node import NodeSpec
from ..routing._registry import NodeRegistry
from ..routing._tracker import PerformanceTracker
from ..types import AIRequest
from ._hedge import HedgePolicy, NoHedge
from ._metrics import NodeChildren, OrchestratorMetrics
from ._retry import RetryPolicy, RetryState, Sleep, Stop, TryNode
from ._settings import OrchestratorSettings

log = logging.getLogger("prsm.performance.orchestrator")


class Pipeline:
    """The parts one request goes through, shared by the orchestrator and its drivers."""

    __slots__ = (
        "balancer",
        "breakers",
        "clock",
        "hedge_tokens",
        "hedger",
        "metrics",
        "monotonic",
        "policy",
        "registry",
        "settings",
        "system_clock",
        "tracker",
    )

    def __init__(
        self,
        *,
        settings: OrchestratorSettings,
        clock: Clock,
        registry: NodeRegistry,
        tracker: PerformanceTracker,
        balancer: AILoadBalancer,
        breakers: BreakerSet,
        metrics: OrchestratorMetrics,
        rng: random.Random,
    ) -> None:
        self.settings = settings
        self.clock = clock
        #: the clock's ``monotonic``; the C function itself for the system clock (one Python
        #: frame less per reading, three readings a request)
        #: whether the clock is the system's (the loop's own time): hedge delays then go in
        #: the loop's tick timers, else each is a task sleeping on the clock
        self.system_clock = type(clock) is SystemClock
        self.monotonic: Callable[[], float] = (
            time.monotonic if self.system_clock else clock.monotonic
        )
        self.registry = registry
        self.tracker = tracker
        self.balancer = balancer
        self.breakers = breakers
        self.metrics = metrics
        self.policy = RetryPolicy.from_settings(settings, rng)
        #: the hedging policy (``None``: hedging off) and its budget, in tokens
        self.hedger = HedgePolicy.from_settings(settings)
        self.hedge_tokens = settings.hedge_burst

    def pick(self, request: AIRequest, now: float, exclude: Collection[str] | None) -> NodeSpec:
        """The balancer's node for ``request`` (its pick counted); raises its routing error."""
        node = self.balancer.pick(request, now, exclude)
        self.metrics.node(node.id).picks.value += 1.0  # (the plain counter's inc(), inline)
        return node

    def begin(
        self, node: NodeSpec, now: float, *, learn: bool = True
    ) -> Attempt | CircuitBreakerOpenError:
        """Start an attempt on ``node`` at ``now``: the attempt, or the breaker's refusal.
        ``learn=False`` leaves teaching the router to the caller (the post's
        ``update_performance_model``)."""
        node_id = node.id
        breaker = self.breakers.get(node_id)
        if not breaker.try_acquire(now):
            return breaker.open_error(now)
        self.registry.acquire(node_id)
        return Attempt(self, node_id, breaker, now, learn, self.metrics.node(node_id))

    def learn(self, node_id: str, latency: float, ok: bool, err: BaseException | None) -> None:
        """Teach the router one outcome of ``node_id``, unless it says nothing about the node
        (a refused breaker, an error the breaker does not count, a removed node)."""
        if node_id not in self.registry.by_id:
            return
        if err is not None and (
            isinstance(err, CircuitBreakerOpenError) or not self.breakers.get(node_id).counts(err)
        ):
            return
        self.tracker.record(node_id, latency, ok, self.monotonic())


class Attempt(msgspec.Struct, eq=False):
    """One attempt in flight on one node (see the module's docstring): ``children`` are the
    node's metric children; ``latency`` is negative until the node answers. A struct (made
    in C: one a request, at half the cost of a class with an ``__init__``); compared by
    identity, as an object."""

    p: Pipeline
    node_id: str
    breaker: CircuitBreaker
    start: float
    learn: bool
    children: NodeChildren
    latency: float = -1.0
    done: bool = False

    def answered(self, now: float) -> float:
        """The node answered at ``now`` (a stream: its first chunk); returns its latency."""
        latency = self.latency = now - self.start
        self.children.latency.observe(latency)
        return latency

    def succeed(self, end: float) -> None:
        """The attempt ended well at ``end``."""
        p = self.p
        node_id = self.node_id
        latency = self.latency
        if latency < 0:  # a unary call: it answered as it ended
            latency = self.latency = end - self.start
            self.children.latency.observe(latency)
        self.done = True
        p.registry.release(node_id)
        self.breaker.record_success(end)
        if p.balancer.end_probe(node_id):
            p.tracker.restore(node_id)  # a probe succeeded: the node is trusted again
        if self.learn and node_id in p.registry.by_id:  # not if it was removed meanwhile
            p.tracker.record(node_id, latency, True, end)

    def fail(self, err: UpstreamError, end: float) -> None:
        """The attempt failed at ``end`` with the node's ``err``."""
        p = self.p
        node_id = self.node_id
        self.done = True
        p.registry.release(node_id)
        latency = self.latency
        if latency < 0:
            latency = end - self.start
            self.children.latency.observe(latency)
        breaker = self.breaker
        if not breaker.counts(err):
            breaker.record_ignored(end)
            return
        breaker.record_failure(end)
        p.balancer.end_probe(node_id, failed=True)
        self.children.failures.inc()
        if self.learn and node_id in p.registry.by_id:
            p.tracker.record(node_id, latency, False, end)

    def abandon(self) -> None:
        """Cancelled, or the caller went away: the outcome says nothing about the node."""
        if self.done:
            return
        self.done = True
        self.p.registry.release(self.node_id)
        self.breaker.record_ignored()


def as_upstream_error(node_id: str, exc: BaseException) -> UpstreamError:
    """``exc`` as the node's :class:`UpstreamError`: itself, or wrapping what an upstream
    raised against its protocol (counted as the node's failure, its cause kept)."""
    if isinstance(exc, UpstreamError):
        return exc
    err = UpstreamError(node_id, f"{type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


def is_cancel(exc: BaseException) -> bool:
    """A cancellation, a generator closed from outside, an interrupt: never the node's
    failure (every ``BaseException`` that is not an ``Exception``)."""
    return not isinstance(exc, Exception)


async def next_node(
    p: Pipeline, request: AIRequest, state: RetryState, now: float
) -> tuple[NodeSpec, RetryState]:
    """Carry out the retry policy after ``state.last_error``: sleep through its back-offs and
    return the node it tries next (the retry counted by reason and logged at debug level),
    or raise the error it stops with (counted as the request's error, by why it stopped)."""
    policy = p.policy
    m = p.metrics

    def pick(exclude: Collection[str]) -> NodeSpec:
        return p.pick(request, now, exclude)

    while True:
        decision, state = policy.decide(state, now, pick)
        if type(decision) is TryNode:
            m.retries.labels(decision.reason).inc()
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "request %s: attempt %d on %s after %s (%s)",
                    request.id, state.attempts, decision.node.id, decision.reason,
                    state.last_error,
                )  # fmt: skip
            return decision.node, state
        if type(decision) is Sleep:
            log.debug(
                "request %s: every capable node failed (%s); backing off %.3fs",
                request.id, decision.reason, decision.seconds,
            )  # fmt: skip
            await p.clock.sleep(decision.seconds)
            now = p.monotonic()
            continue
        assert type(decision) is Stop
        m.error.inc()
        m.gave_up.labels(decision.reason).inc()
        log.debug(
            "request %s: giving up after %d attempt(s) (%s): %s",
            request.id, state.attempts, decision.reason, decision.error,
        )  # fmt: skip
        raise decision.error


def first_node(p: Pipeline, request: AIRequest, now: float) -> NodeSpec:
    """The first attempt's node (the policy's first decision, taken directly: nothing to
    decide yet); a routing error is counted as the request's error and raised."""
    try:
        node = p.balancer.pick(request, now, None)  # p.pick, one call less: every request's
    except RoutingError:
        p.metrics.error.inc()
        p.metrics.gave_up.labels("no_node").inc()
        raise
    p.metrics.node(node.id).picks.value += 1.0  # (the plain counter's inc(), inline)
    return node


def hedge_to(
    p: Pipeline, request: AIRequest, first: str, now: float, limit: float
) -> NodeSpec | None:
    """The node a hedge of ``request`` (its first attempt on node ``first``) goes to, as the
    policy and its budget decide at ``now`` (``limit``: when the request gives up), counted
    as ``sent``; ``None``, counted as ``skipped_<reason>``, when none goes."""
    hedger = p.hedger
    assert hedger is not None
    exclude = (first,)

    def pick() -> NodeSpec:
        return p.pick(request, now, exclude)

    decision, p.hedge_tokens = hedger.decide(p.hedge_tokens, now, limit, pick)
    if type(decision) is NoHedge:
        p.metrics.hedges.labels(f"skipped_{decision.reason}").inc()
        return None
    assert not isinstance(decision, NoHedge)
    p.metrics.hedges.labels("sent").inc()
    return decision.node
