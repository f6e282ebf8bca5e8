from ._breaker import (
    BreakerSet as BreakerSet,
    BreakerState as BreakerState,
    CircuitBreaker as CircuitBreaker,
    CircuitState as CircuitState,
)
from ._settings import BreakerSettings as BreakerSettings
