from ._breaker import (
    BreakerSet as BreakerSet,
)
from ._breaker import (
    BreakerState as BreakerState,
)
from ._breaker import (
    CircuitBreaker as CircuitBreaker,
)
from ._breaker import (
    CircuitState as CircuitState,
)
from ._settings import BreakerSettings as BreakerSettings
