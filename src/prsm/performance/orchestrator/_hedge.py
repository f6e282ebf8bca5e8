"""The hedging policy: when a unary attempt (or a stream's first chunk) is slow, send one more
to another node.

What Envoy's and gRPC's request hedging do, kept pure like the retry policy
(:mod:`._retry`): :meth:`HedgePolicy.delay` says how long the first attempt may take before
a hedge is considered (from the node's learned latency), and :meth:`HedgePolicy.decide`
takes the hedge budget, ``now``, the deadline and the balancer's ``pick`` and returns a
decision with the budget that follows it. No clock, no I/O; the unary driver
(:func:`~._unary.attempt_first`) and the streaming one (:mod:`._stream_hedge`) carry the
decision out.

::

    first attempt sent ─ answered without waiting ──────────────────► done (no timer at all)
                       ─ hedging off, or the budget holds < 1 token ─► deadline only (no hedge)
                       ─ else: its timer fires at delay(node) first ─► on time-out: decide
    decide ─ budget < 1 token ──────────────────────────────────────► NoHedge("budget")
           ─ now >= deadline ───────────────────────────────────────► NoHedge("deadline")
           ─ no capable node other than the first ──────────────────► NoHedge("no_node")
           ─ else ───────────────────────────────────────────────────► Hedge(node), one token spent

The budget is a token bucket: every request (unary or stream) adds ``ratio`` tokens (at
most ``burst`` held), a hedge spends one, so hedges are at most ``ratio`` of requests in the
long run and never double the load of an overloaded fleet (TCP-style retry budgets, gRPC's
throttling).
The delay is ``factor × (latency + 4 · deviation)`` of the node (TCP's retransmission
timeout estimator, RFC 6298: roughly a high quantile of its recent healthy latencies),
within ``[min_delay, max_delay]``; a node with nothing learned yet gets ``min_delay``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import RoutingError
from ..routing._node import NodeSpec
from ..routing._tracker import NodeStats
from ._settings import OrchestratorSettings

#: Why a hedge was not sent (the ``reason`` of :class:`NoHedge`).
NO_HEDGE_REASONS = ("budget", "deadline", "no_node")

#: ``pick()``: the balancer's best capable node other than the first attempt's; raises a
#: :class:`~prsm.performance.errors.RoutingError` when there is none.
HedgePick = Callable[[], NodeSpec]


@dataclass(frozen=True, slots=True)
class Hedge:
    """Send one more attempt of the request to ``node``."""

    node: NodeSpec


@dataclass(frozen=True, slots=True)
class NoHedge:
    """Send none; ``reason`` is one of :data:`NO_HEDGE_REASONS`."""

    reason: str


HedgeDecision = Hedge | NoHedge


class HedgePolicy:
    """When to hedge and how often (see the module's diagram). The bounds are checked where
    they are configured (:class:`~._settings.OrchestratorSettings`)."""

    __slots__ = ("burst", "factor", "max_delay", "min_delay", "ratio")

    def __init__(
        self,
        *,
        factor: float = 1.5,
        min_delay: float = 0.05,
        max_delay: float = 2.0,
        ratio: float = 0.1,
        burst: float = 10.0,
    ) -> None:
        self.factor = factor
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.ratio = ratio
        self.burst = burst

    @classmethod
    def from_settings(cls, settings: OrchestratorSettings) -> HedgePolicy | None:
        """The policy the ``orchestrator`` section describes (``None`` with ``hedge: false``)."""
        if not settings.hedge:
            return None
        return cls(
            factor=settings.hedge_factor,
            min_delay=settings.hedge_min_delay,
            max_delay=settings.hedge_max_delay,
            ratio=settings.hedge_budget,
            burst=settings.hedge_burst,
        )

    def deposit(self, tokens: float) -> float:
        """The budget after one more unary request."""
        tokens += self.ratio
        return tokens if tokens < self.burst else self.burst

    def delay(self, stats: NodeStats) -> float:
        """How long an attempt on a node with learned figures ``stats`` may go unanswered
        before a hedge is considered."""
        d = self.factor * (stats.latency + 4.0 * stats.deviation)
        if d < self.min_delay:
            return self.min_delay
        return d if d < self.max_delay else self.max_delay

    def decide(
        self, tokens: float, now: float, deadline: float, pick: HedgePick
    ) -> tuple[HedgeDecision, float]:
        """At the hedge delay, with ``tokens`` in the budget: the decision, and the budget
        after it."""
        if tokens < 1.0:
            return NoHedge("budget"), tokens
        if now >= deadline:
            return NoHedge("deadline"), tokens
        try:
            node = pick()
        except RoutingError:
            return NoHedge("no_node"), tokens
        return Hedge(node), tokens - 1.0


__all__ = [
    "NO_HEDGE_REASONS",
    "Hedge",
    "HedgeDecision",
    "HedgePick",
    "HedgePolicy",
    "NoHedge",
]
