from ._registry import (
    LATENCY_BUCKETS as LATENCY_BUCKETS,
    MetricsRegistry as MetricsRegistry,
)
