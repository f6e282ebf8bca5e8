from ._exposition import (
    LoadReading as LoadReading,
    read_exposition as read_exposition,
)
from ._fetch import (
    HttpMetricsFetcher as HttpMetricsFetcher,
    MetricsFetcher as MetricsFetcher,
    StaticMetricsFetcher as StaticMetricsFetcher,
    metrics_url as metrics_url,
)
from ._poller import (
    LoadSource as LoadSource,
    NodePoller as NodePoller,
)
