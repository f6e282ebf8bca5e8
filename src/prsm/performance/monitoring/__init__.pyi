from ._plain import (
    HistogramView as HistogramView,
    PlainCounter as PlainCounter,
    PlainFamily as PlainFamily,
    PlainHistogram as PlainHistogram,
)
from ._registry import (
    LATENCY_BUCKETS as LATENCY_BUCKETS,
    MetricsRegistry as MetricsRegistry,
    plain_family as plain_family,
)
