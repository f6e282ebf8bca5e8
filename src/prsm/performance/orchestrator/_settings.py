"""Settings of :class:`~prsm.performance.orchestrator.PerformanceOrchestrator` (config
section ``orchestrator``).

Imports only the standard library and :mod:`prsm.performance.errors`, so ``config.py`` can
import it without a cycle. This section is the one source of every request-level timeout:
the deadline (``default_timeout``), retries and back-off, and the three limits of a stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError

#: Every caching strategy the orchestrator accepts.
CACHING_STRATEGIES: tuple[str, ...] = (
    "none",
    "memory",
    "multi_tier",
    "semantic",
    "multi_tier+semantic",
)


def check_caching_strategy(value: object, field: str = "caching_strategy") -> str:
    if not isinstance(value, str) or value not in CACHING_STRATEGIES:
        raise ConfigError(
            field, f"unknown value {value!r}; allowed: {', '.join(CACHING_STRATEGIES)}"
        )
    return value


def _seconds(name: str, value: object, *, optional: bool = False, zero: bool = False) -> None:
    if optional and value is None:
        return
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if zero else value > 0)
    )
    if not ok:
        bound = ">= 0" if zero else "> 0"
        none = " (or unset)" if optional else ""
        raise ConfigError(name, f"must be a number of seconds {bound}{none}, got {value!r}")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class OrchestratorSettings:
    """The request pipeline's settings.

    ``default_timeout`` is a request's deadline in seconds when it sets none: every attempt,
    retry and back-off of a unary call happens within it; for a stream it bounds everything
    before the first chunk (the stream limits below take over once it has started).
    ``max_attempts`` bounds the attempts one request makes (the first try included).

    Retries: after a retryable failure the next capable node not tried yet is tried at once;
    when every capable node has been tried, the policy sleeps a back-off and tries them again:
    ``retry_backoff`` seconds the first time, times ``retry_backoff_multiplier`` each time
    after, at most ``retry_backoff_max``; ``retry_jitter`` is the fraction of each back-off
    drawn at random (0: none; 1: anywhere from 0 to the full back-off). A node's
    ``Retry-After`` lengthens the back-off; when it (or the back-off) reaches past the
    deadline, the request stops at once with the node's error.

    Streams: ``stream_first_token_timeout`` bounds each attempt's wait for its first chunk
    (with the deadline and the node's ``timeout``; a node that misses it is counted as failed
    and the next one is tried); ``stream_idle_timeout`` bounds each wait between two chunks
    (a stalled stream is cut and counted against its node); ``stream_total_timeout``, when
    set, bounds a stream's whole duration (cut, but never counted against the node).
    ``stream_max_resumes`` bounds how many times one stream that broke mid-way (cut,
    stalled, a malformed event) is continued on another node (a chat's on one that declares
    ``resume``; 0: never; see :mod:`._resume`); each resume must start within the request's
    deadline. ``stream_max_continuations`` bounds the requests one resume of a stream of
    several choices opens at once on the node that takes it over (one per unfinished choice;
    a stream with more is not resumed, ``unsupported``).

    Hedging: when the first attempt has not answered (a stream: sent its first chunk) within
    its hedge delay, one more attempt goes to the best other capable node; the first good
    answer (first chunk) wins and the other attempt is cancelled (a stream closed). The
    delay is ``hedge_factor`` times the node's learned latency estimate (its latency EWMA
    plus four mean deviations, TCP's retransmission-timeout estimator), within
    [``hedge_min_delay``, ``hedge_max_delay``]. A token bucket bounds hedges to
    ``hedge_budget`` per request in the long run (at most ``hedge_burst`` at once after a
    quiet spell), so hedging never doubles the load of an overloaded fleet.
    ``hedge: false`` turns it off.

    ``monitoring_interval`` is how often the background loop (running between
    :meth:`~prsm.performance.orchestrator.PerformanceOrchestrator.start` and ``close``)
    refreshes the per-node gauges. ``caching_strategy`` picks the response cache that is built.
    ``auto_scaling`` is accepted and validated; nothing scales yet (a warning says so).
    """

    auto_scaling: bool = False
    caching_strategy: str = "none"
    monitoring_interval: float = 1.0
    default_timeout: float = 60.0
    max_attempts: int = 3
    retry_backoff: float = 0.1
    retry_backoff_multiplier: float = 2.0
    retry_backoff_max: float = 5.0
    retry_jitter: float = 0.5
    stream_first_token_timeout: float = 30.0
    stream_idle_timeout: float = 30.0
    stream_total_timeout: float | None = None
    stream_max_resumes: int = 2
    stream_max_continuations: int = 16
    hedge: bool = True
    hedge_factor: float = 1.5
    hedge_min_delay: float = 0.05
    hedge_max_delay: float = 2.0
    hedge_budget: float = 0.1
    hedge_burst: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.auto_scaling, bool):
            raise ConfigError("auto_scaling", f"must be true or false, got {self.auto_scaling!r}")
        check_caching_strategy(self.caching_strategy)
        for name in (
            "monitoring_interval",
            "default_timeout",
            "stream_first_token_timeout",
            "stream_idle_timeout",
        ):
            _seconds(name, getattr(self, name))
        _seconds("stream_total_timeout", self.stream_total_timeout, optional=True)
        resumes = self.stream_max_resumes
        if not isinstance(resumes, int) or isinstance(resumes, bool) or not 0 <= resumes <= 100:
            raise ConfigError(
                "stream_max_resumes", f"must be an integer within [0, 100], got {resumes!r}"
            )
        conts = self.stream_max_continuations
        if not isinstance(conts, int) or isinstance(conts, bool) or not 1 <= conts <= 1000:
            raise ConfigError(
                "stream_max_continuations", f"must be an integer within [1, 1000], got {conts!r}"
            )
        attempts = self.max_attempts
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            raise ConfigError("max_attempts", f"must be an integer >= 1, got {attempts!r}")
        _seconds("retry_backoff", self.retry_backoff, zero=True)
        _seconds("retry_backoff_max", self.retry_backoff_max, zero=True)
        if self.retry_backoff_max < self.retry_backoff:
            raise ConfigError(
                "retry_backoff_max",
                f"must be >= retry_backoff ({self.retry_backoff!r}), got "
                f"{self.retry_backoff_max!r}",
            )
        mult = self.retry_backoff_multiplier
        if not isinstance(mult, (int, float)) or isinstance(mult, bool) or not 1.0 <= mult < 1e6:
            raise ConfigError("retry_backoff_multiplier", f"must be within [1, 1e6), got {mult!r}")
        jitter = self.retry_jitter
        if not isinstance(jitter, (int, float)) or isinstance(jitter, bool) or not 0 <= jitter <= 1:
            raise ConfigError("retry_jitter", f"must be within [0, 1], got {jitter!r}")
        self._check_hedge()

    def _check_hedge(self) -> None:
        if not isinstance(self.hedge, bool):
            raise ConfigError("hedge", f"must be true or false, got {self.hedge!r}")
        _seconds("hedge_min_delay", self.hedge_min_delay)
        _seconds("hedge_max_delay", self.hedge_max_delay)
        if self.hedge_max_delay < self.hedge_min_delay:
            raise ConfigError(
                "hedge_max_delay",
                f"must be >= hedge_min_delay ({self.hedge_min_delay!r}), got "
                f"{self.hedge_max_delay!r}",
            )
        factor = self.hedge_factor
        if not _number(factor) or not 1.0 <= factor <= 100.0:
            raise ConfigError("hedge_factor", f"must be within [1, 100], got {factor!r}")
        budget = self.hedge_budget
        if not _number(budget) or not 0.0 < budget <= 1.0:
            raise ConfigError("hedge_budget", f"must be within (0, 1], got {budget!r}")
        burst = self.hedge_burst
        if not _number(burst) or not 1.0 <= burst <= 1e6:
            raise ConfigError("hedge_burst", f"must be within [1, 1e6], got {burst!r}")
