"""The retry policy: after a failed attempt, try another node, sleep, or stop.

Tenacity's design (``iter()`` turns a retry state into the next action: attempt, sleep or
stop), kept pure: :meth:`RetryPolicy.decide` takes a snapshot (:class:`RetryState`), ``now``
and the balancer's ``pick`` and returns a decision with the state that follows it. No clock,
no I/O, randomness only from the injected :class:`random.Random`; the unary and streaming
drivers carry the decisions out (attempt, ``await clock.sleep(s)``, raise).

::

    failure ─ not retryable (a client's 4xx) ────────────────────────► Stop(err, not_retryable)
            ─ attempts == max_attempts ──────────────────────────────► Stop(err, attempts)
            ─ now >= deadline ────────────────────────────────────────► Stop(DeadlineExceeded)
            ─ a capable node not tried since the last back-off ──────► TryNode(it)  (no wait)
            ─ every capable node tried: back-off (jittered), at least
              the node's Retry-After, and it ends before the deadline ► Sleep(s), then TryNode
            ─ … it would end at or past the deadline ─────────────────► Stop(err, deadline /
                                                                        retry_after_beyond_deadline)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import NamedTuple

from ..errors import (
    CircuitBreakerOpenError,
    DeadlineExceededError,
    RoutingError,
    StreamTimeoutError,
    UpstreamError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
)
from ..routing._node import NodeSpec
from ._settings import OrchestratorSettings

#: Why an attempt failed: the node's error, or its breaker refusing the call.
Failure = UpstreamError | CircuitBreakerOpenError

#: ``pick(exclude)``: the balancer's choice among capable nodes not in ``exclude``; raises a
#: :class:`~prsm.performance.errors.RoutingError` when there is none.
Pick = Callable[[Collection[str]], NodeSpec]

#: Why a request stopped retrying (the ``reason`` of :class:`Stop`).
STOP_REASONS = ("not_retryable", "attempts", "deadline", "retry_after_beyond_deadline", "no_node")


def retryable(err: BaseException) -> bool:
    """Whether another attempt may follow ``err``: a refused breaker, or an upstream error
    marked retryable (5xx, 429, timeouts, connection errors, the node's own 401/403/404/3xx)."""
    if isinstance(err, CircuitBreakerOpenError):
        return True
    return isinstance(err, UpstreamError) and err.retryable


def failure_reason(err: BaseException) -> str:
    """A short label of what went wrong, for metrics and logs (never the node's words)."""
    if isinstance(err, CircuitBreakerOpenError):
        return "breaker_open"
    if isinstance(err, StreamTimeoutError):
        return f"stream_{err.phase}_timeout"
    if isinstance(err, UpstreamTimeoutError):
        return "timeout"
    if isinstance(err, UpstreamError):
        status = err.status
        if status is None:
            return "unavailable" if err.retryable else "error"
        if status == 429:
            return "rate_limited"
        if status >= 500:
            return "server_error"
        if isinstance(err, UpstreamRejectedError):
            if status in (401, 403, 407):
                return "node_auth"
            if 300 <= status < 400:
                return "node_redirect"
            return "node_not_found"
        return "client_error" if not err.retryable else f"status_{status}"
    return type(err).__name__


def retry_after_of(err: BaseException | None) -> float:
    """The seconds ``err`` asks us to wait before its node is tried again (0 if none)."""
    seconds = getattr(err, "retry_after", None)
    return float(seconds) if seconds is not None and seconds > 0 else 0.0


class RetryState(NamedTuple):
    """What the policy decides from: the request's ``deadline`` (monotonic seconds) and
    ``budget`` (its length), the ``attempts`` made, the nodes ``tried`` since the last
    back-off, the back-off ``sleeps`` so far, and the ``last_error``."""

    deadline: float
    budget: float
    attempts: int = 0
    tried: tuple[str, ...] = ()
    sleeps: int = 0
    last_error: Failure | None = None


@dataclass(frozen=True, slots=True)
class TryNode:
    """Attempt the request on ``node``; ``reason`` is why (``first``, or the last failure's
    :func:`failure_reason`)."""

    node: NodeSpec
    reason: str


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds`` (the clock's ``sleep``), then ask again; ``reason`` as in
    :class:`TryNode`."""

    seconds: float
    reason: str


@dataclass(frozen=True, slots=True)
class Stop:
    """Give up and raise ``error``; ``reason`` is one of :data:`STOP_REASONS`."""

    error: BaseException
    reason: str


Decision = TryNode | Sleep | Stop


class RetryPolicy:
    """Exponential back-off with jitter, bounded by attempts and the deadline, honouring a
    node's ``Retry-After`` (see the module's diagram).

    ``backoff`` is the first back-off, multiplied by ``multiplier`` after each, capped at
    ``backoff_max``; ``jitter`` is the fraction of each drawn at random from ``rng``.
    """

    __slots__ = ("backoff_max", "backoff_seconds", "jitter", "max_attempts", "multiplier", "rng")

    def __init__(
        self,
        *,
        max_attempts: int = 3,
        backoff: float = 0.1,
        multiplier: float = 2.0,
        backoff_max: float = 5.0,
        jitter: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        # the bounds are checked where they are configured (OrchestratorSettings)
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff
        self.multiplier = multiplier
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.rng = rng or random.Random()

    @classmethod
    def from_settings(
        cls, settings: OrchestratorSettings, rng: random.Random | None = None
    ) -> RetryPolicy:
        """The policy the ``orchestrator`` config section describes."""
        return cls(
            max_attempts=settings.max_attempts,
            backoff=settings.retry_backoff,
            multiplier=settings.retry_backoff_multiplier,
            backoff_max=settings.retry_backoff_max,
            jitter=settings.retry_jitter,
            rng=rng,
        )

    def backoff(self, sleeps: int) -> float:
        """The back-off before round ``sleeps + 1`` of retries, jitter drawn."""
        base = min(self.backoff_max, self.backoff_seconds * self.multiplier**sleeps)
        if self.jitter:
            base *= 1.0 - self.jitter * self.rng.random()
        return base

    def decide(self, state: RetryState, now: float, pick: Pick) -> tuple[Decision, RetryState]:
        """The next step after ``state.last_error`` (or the first one when there is none),
        and the state after that step."""
        err = state.last_error
        if err is None:
            try:
                node = pick(state.tried)
            except RoutingError as exc:
                return Stop(exc, "no_node"), state
            return TryNode(node, "first"), _tried(state, node)
        if not retryable(err):
            return Stop(err, "not_retryable"), state
        if state.attempts >= self.max_attempts:
            return Stop(err, "attempts"), state
        if now >= state.deadline:
            return Stop(DeadlineExceededError(state.budget, state.attempts, err), "deadline"), state
        reason = failure_reason(err)
        try:
            node = pick(state.tried)
        except RoutingError:
            if not state.tried:  # nothing capable even with no node excluded: waiting won't help
                return Stop(err, "no_node"), state
            # every capable node was tried this round: back off, below
        else:
            return TryNode(node, reason), _tried(state, node)
        wait = self.backoff(state.sleeps)
        asked = retry_after_of(err)
        if now + max(wait, asked) >= state.deadline:
            why = "retry_after_beyond_deadline" if asked > wait else "deadline"
            return Stop(err, why), state
        return Sleep(max(wait, asked), reason), state._replace(sleeps=state.sleeps + 1, tried=())


def _tried(state: RetryState, node: NodeSpec) -> RetryState:
    return state._replace(attempts=state.attempts + 1, tried=(*state.tried, node.id))


__all__ = [
    "STOP_REASONS",
    "Decision",
    "Failure",
    "RetryPolicy",
    "RetryState",
    "Sleep",
    "Stop",
    "TryNode",
    "failure_reason",
    "retryable",
]
