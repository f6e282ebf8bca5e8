"""Settings of the circuit breakers (config section ``breaker``).

Imports only the standard library and :mod:`prsm.performance.errors`, so ``config.py`` can
import it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a breaker opens, how long it stays open, and how it probes.

    A CLOSED breaker opens after ``failure_threshold`` consecutive failures (the source post's
    5), or — when ``failure_rate_threshold`` is set — when at least ``min_calls_in_window``
    calls in the last ``window`` seconds failed at that rate or more. An OPEN breaker refuses
    calls for ``reset_timeout`` seconds (the post's 60), then lets at most
    ``half_open_max_calls`` probes through at once; ``success_threshold`` probe successes close
    it, one probe failure opens it again, for ``probe_interval`` seconds this time: a node
    that stays down is probed every ``probe_interval`` seconds, so one that comes back gets
    traffic again at the first probe after it did (unset: ``reset_timeout`` again). Which
    exceptions count is set on the breaker itself (``CircuitBreaker(excluded=...,
    is_failure=...)``); a client's 4xx never counts.
    """

    failure_threshold: int = 5
    reset_timeout: float = 60.0
    half_open_max_calls: int = 1
    success_threshold: int = 1
    failure_rate_threshold: float | None = None
    window: float = 60.0
    window_buckets: int = 10
    min_calls_in_window: int = 20
    probe_interval: float | None = 0.5

    def __post_init__(self) -> None:
        for name in (
            "failure_threshold",
            "half_open_max_calls",
            "success_threshold",
            "window_buckets",
            "min_calls_in_window",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(name, f"must be an integer >= 1, got {value!r}")
        if not self.reset_timeout > 0:
            raise ConfigError("reset_timeout", f"must be > 0 seconds, got {self.reset_timeout!r}")
        interval = self.probe_interval
        if interval is not None and not (
            isinstance(interval, (int, float)) and not isinstance(interval, bool) and interval > 0
        ):
            raise ConfigError("probe_interval", f"must be > 0 seconds (or unset), got {interval!r}")
        if not self.window > 0:
            raise ConfigError("window", f"must be > 0 seconds, got {self.window!r}")
        rate = self.failure_rate_threshold
        if rate is not None and not 0.0 < rate <= 1.0:
            raise ConfigError("failure_rate_threshold", f"must be within (0, 1], got {rate!r}")
