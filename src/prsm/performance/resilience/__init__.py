"""Resilience: circuit breakers (a pure state machine and its driver), one per node."""

from .breaker import BreakerSet, BreakerState, CircuitBreaker, CircuitState
from .settings import BreakerSettings

__all__ = ["BreakerSet", "BreakerSettings", "BreakerState", "CircuitBreaker", "CircuitState"]
