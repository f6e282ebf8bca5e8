"""Settings of :class:`~prsm.performance.orchestrator.PerformanceOrchestrator` (config
section ``orchestrator``).

Imports only the standard library and :mod:`prsm.performance.errors`, so ``config.py`` can
import it without a cycle.
"""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class OrchestratorSettings:
    """The request pipeline's settings.

    ``default_timeout`` is a request's deadline in seconds when it sets none;
    ``max_attempts`` bounds the nodes one request is tried on (first try plus retries on the
    next capable node). ``monitoring_interval`` is how often the background loop (running
    between :meth:`~prsm.performance.orchestrator.PerformanceOrchestrator.start` and ``close``)
    refreshes the per-node gauges. ``caching_strategy`` and ``auto_scaling`` are accepted and
    validated; what they build comes with the caching and scaling components (see the
    orchestrator's docstring).
    """

    auto_scaling: bool = False
    caching_strategy: str = "none"
    monitoring_interval: float = 1.0
    default_timeout: float = 30.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.auto_scaling, bool):
            raise ConfigError("auto_scaling", f"must be true or false, got {self.auto_scaling!r}")
        check_caching_strategy(self.caching_strategy)
        if not self.monitoring_interval > 0:
            raise ConfigError(
                "monitoring_interval", f"must be > 0 seconds, got {self.monitoring_interval!r}"
            )
        if not self.default_timeout > 0:
            raise ConfigError(
                "default_timeout", f"must be > 0 seconds, got {self.default_timeout!r}"
            )
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ConfigError("max_attempts", f"must be an integer >= 1, got {self.max_attempts!r}")
