"""Settings of the load balancer (config section ``routing``).

Imports only the standard library and :mod:`prsm.performance.errors`, so ``config.py`` can
import it without a cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError

#: Every routing strategy, by the name options and config files use.
ROUTING_STRATEGIES: tuple[str, ...] = (
    "intelligent",
    "weighted_round_robin",
    "round_robin",
    "least_loaded",
    "power_of_two",
    "latency",
)


def check_strategy(value: object, field: str = "strategy") -> str:
    """``value`` if it names a strategy, else a :class:`ConfigError` listing the allowed ones."""
    if not isinstance(value, str) or value not in ROUTING_STRATEGIES:
        raise ConfigError(
            field, f"unknown strategy {value!r}; allowed: {', '.join(ROUTING_STRATEGIES)}"
        )
    return value


def _fraction(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ConfigError(name, f"must be within [0, 1], got {value!r}")


@dataclass(frozen=True, slots=True)
class BalancerSettings:
    """How :class:`~prsm.performance.routing.AILoadBalancer` scores and picks nodes.

    ``intelligent`` scores a node ``performance_weight · performance + load_weight ·
    (1 − load)`` with ``load = cpu_weight · cpu + memory_weight · memory + queue_weight ·
    queue`` (the source post's 0.6 / 0.4 and 0.4 / 0.3 / 0.3); ``queue`` is the node's
    reported queue depth plus this process's in-flight requests over its capacity, capped at 1.

    ``performance`` (:class:`~prsm.performance.routing.PerformanceTracker`) is the
    EWMA success rate times ``latency_scale / (latency_scale + ewma_latency)``; both EWMAs use
    ``ewma_alpha``. ``latency_explore`` is the chance that the ``latency`` strategy tries a
    random capable node instead of the fastest one, so a node that was slow once is measured
    again. ``max_cached_groups`` bounds the cache of candidate lists (one per distinct set of
    required capabilities).

    Load signals (what a node reports: cpu, memory, its own queue) count fully for
    ``signal_ttl`` seconds after they were read, then fade in steps over ``signal_decay``
    seconds into what this process sees of the node (its in-flight requests over its
    ``max_concurrency``), after which the node is *stale* (see :mod:`.scoring`). The poller
    (:class:`~prsm.performance.nodeload.NodePoller`) reads remote nodes' metrics with a
    ``poll_timeout``, at most ``poll_concurrency`` at once; a node whose poll fails is polled
    again after an exponential back-off capped at ``poll_max_backoff`` seconds, and one that
    publishes no load metrics (e.g. a hosted API) is asked again every ``poll_recheck``
    seconds.
    """

    strategy: str = "intelligent"
    performance_weight: float = 0.6
    load_weight: float = 0.4
    cpu_weight: float = 0.4
    memory_weight: float = 0.3
    queue_weight: float = 0.3
    ewma_alpha: float = 0.2
    latency_scale: float = 1.0
    latency_explore: float = 0.05
    max_cached_groups: int = 1024
    signal_ttl: float = 5.0
    signal_decay: float = 10.0
    poll_timeout: float = 2.0
    poll_concurrency: int = 32
    poll_max_backoff: float = 60.0
    poll_recheck: float = 300.0

    def __post_init__(self) -> None:
        check_strategy(self.strategy)
        for name in (
            "performance_weight",
            "load_weight",
            "cpu_weight",
            "memory_weight",
            "queue_weight",
            "latency_explore",
        ):
            _fraction(name, getattr(self, name))
        if not math.isclose(self.performance_weight + self.load_weight, 1.0, abs_tol=1e-9):
            raise ConfigError(
                "performance_weight",
                f"performance_weight + load_weight must be 1, got "
                f"{self.performance_weight} + {self.load_weight}",
            )
        total = self.cpu_weight + self.memory_weight + self.queue_weight
        if not math.isclose(total, 1.0, abs_tol=1e-9):
            raise ConfigError(
                "cpu_weight",
                f"cpu_weight + memory_weight + queue_weight must be 1, got {total}",
            )
        if not 0.0 < self.ewma_alpha <= 1.0:
            raise ConfigError("ewma_alpha", f"must be within (0, 1], got {self.ewma_alpha!r}")
        if not self.latency_scale > 0:
            raise ConfigError("latency_scale", f"must be > 0 seconds, got {self.latency_scale!r}")
        if self.max_cached_groups < 1:
            raise ConfigError("max_cached_groups", f"must be >= 1, got {self.max_cached_groups!r}")
        for name in ("signal_ttl", "poll_timeout", "poll_max_backoff", "poll_recheck"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise ConfigError(name, f"must be a positive number of seconds, got {value!r}")
        if not (isinstance(self.signal_decay, (int, float)) and 0 <= self.signal_decay < math.inf):
            raise ConfigError("signal_decay", f"must be >= 0 seconds, got {self.signal_decay!r}")
        if self.poll_concurrency < 1:
            raise ConfigError("poll_concurrency", f"must be >= 1, got {self.poll_concurrency!r}")
