"""What the balancer learns from outcomes: per-node EWMA latency, success rate and a
performance score in [0, 1].

:func:`observe` is the pure update; :class:`PerformanceTracker` keeps one
:class:`NodeStats` per node and tells a listener (the balancer) when a node's figures change.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from msgspec.structs import replace

from ._settings import BalancerSettings


class NodeStats(msgspec.Struct):
    """One node's learned figures. ``latency`` is the EWMA of successful calls' seconds
    (0 until the first one); ``deviation`` the EWMA of their distance from it (TCP's
    RTTVAR: ``latency + 4 · deviation`` estimates a high quantile); ``success_rate`` the
    EWMA of outcomes (1 = success). Treated as a value: every update makes a new one
    (:func:`observe` is pure), and nobody changes one in place. One is made per observed
    outcome and its fields are read about 13 times a request, so it is a struct (made in C,
    at less than half the cost of a slotted class's ``__init__``; its fields read as fast)
    and not a named tuple (on Python 3.11 a named tuple's field read is not specialized:
    about 35 ns against 13). Compared by value, as a dataclass."""

    requests: int = 0
    failures: int = 0
    latency: float = 0.0
    success_rate: float = 1.0
    last_seen: float | None = None
    deviation: float = 0.0

    def performance(self, latency_scale: float) -> float:
        """``success_rate · latency_scale / (latency_scale + latency)``, in [0, 1]."""
        return self.success_rate * latency_scale / (latency_scale + self.latency)


def observe(stats: NodeStats, latency: float, ok: bool, now: float, alpha: float) -> NodeStats:
    """The figures after one more outcome (pure). Failed calls do not move the latency EWMA:
    a fast failure must not look like a fast node."""
    if ok:
        if stats.requests == stats.failures:  # the first success (RFC 6298's first sample)
            lat, dev = latency, latency / 2
        else:
            old = stats.latency
            lat = old + alpha * (latency - old)
            dev = stats.deviation
            dev += alpha * ((latency - old if latency >= old else old - latency) - dev)
        rate = stats.success_rate + alpha * (1.0 - stats.success_rate)
        return NodeStats(stats.requests + 1, stats.failures, lat, rate, now, dev)
    rate = stats.success_rate * (1.0 - alpha)
    return NodeStats(
        stats.requests + 1, stats.failures + 1, stats.latency, rate, now, stats.deviation
    )


def observe_slow(stats: NodeStats, elapsed: float, now: float, alpha: float) -> NodeStats:
    """The figures after an attempt was cancelled unanswered after ``elapsed`` seconds
    because another node answered first (a hedge won): its latency is at least ``elapsed``,
    so a latency learned below that moves up as a success that slow would move it; the
    success rate and counts stay (it did not fail)."""
    old = stats.latency
    if stats.requests == stats.failures:  # nothing learned yet: this is the first sample
        return replace(stats, latency=elapsed, deviation=elapsed / 2, last_seen=now)
    if elapsed <= old:
        return stats
    dev = stats.deviation + alpha * ((elapsed - old) - stats.deviation)
    return replace(stats, latency=old + alpha * (elapsed - old), deviation=dev, last_seen=now)


class PerformanceTracker:
    """Per-node performance, updated by :meth:`record` (what ``update_performance_model``
    calls)."""

    def __init__(
        self,
        settings: BalancerSettings | None = None,
        *,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings or BalancerSettings()
        self._stats: dict[str, NodeStats] = {}
        self._on_change = on_change
        self._empty = NodeStats()

    def set_listener(self, on_change: Callable[[str], None] | None) -> None:
        """Call ``on_change(node_id)`` after every change of a node's figures."""
        self._on_change = on_change

    def record(self, node_id: str, latency: float, ok: bool, now: float) -> NodeStats:
        """Learn one outcome of ``node_id``; returns its new figures."""
        if latency < 0:
            raise ValueError(f"latency: must be >= 0 seconds, got {latency!r}")
        new = observe(
            self._stats.get(node_id, self._empty), latency, ok, now, self.settings.ewma_alpha
        )
        self._stats[node_id] = new
        if self._on_change is not None:
            self._on_change(node_id)
        return new

    def record_slow(self, node_id: str, elapsed: float, now: float) -> NodeStats:
        """Learn that ``node_id`` had not answered after ``elapsed`` seconds when another node
        did (see :func:`observe_slow`); returns its new figures."""
        old = self._stats.get(node_id, self._empty)
        new = observe_slow(old, elapsed, now, self.settings.ewma_alpha)
        if new is not old:
            self._stats[node_id] = new
            if self._on_change is not None:
                self._on_change(node_id)
        return new

    def stats(self, node_id: str) -> NodeStats:
        """The node's figures (fresh ones for a node never seen)."""
        return self._stats.get(node_id, self._empty)

    def performance(self, node_id: str) -> float:
        """The node's performance score in [0, 1] (1 for a node never seen)."""
        return self.stats(node_id).performance(self.settings.latency_scale)

    def latency(self, node_id: str) -> float:
        """The node's EWMA latency in seconds (0 until measured)."""
        return self.stats(node_id).latency

    def restore(self, node_id: str) -> None:
        """Trust ``node_id`` again (its breaker closed after a successful probe): the success
        rate goes back to 1, the latency and counts are kept. Without it the failures that
        opened the breaker would keep the node's score at the bottom, so it would not be
        picked, and would never earn its rate back."""
        stats = self._stats.get(node_id)
        if stats is None or stats.success_rate == 1.0:
            return
        self._stats[node_id] = replace(stats, success_rate=1.0)
        if self._on_change is not None:
            self._on_change(node_id)

    def forget(self, node_id: str) -> None:
        """Drop what was learned about ``node_id`` (it was removed)."""
        self._stats.pop(node_id, None)

    def all(self) -> dict[str, NodeStats]:
        """Every node's figures."""
        return dict(self._stats)
