from ._registry import (
    LATENCY_BUCKETS as LATENCY_BUCKETS,
)
from ._registry import (
    MetricsRegistry as MetricsRegistry,
)
