from ._admin import monitoring_route as monitoring_route
from ._alerts import (
    AlertManager as AlertManager,
    LogNotifier as LogNotifier,
    Notifier as Notifier,
    WebhookNotifier as WebhookNotifier,
    sign_webhook as sign_webhook,
    webhook_payload as webhook_payload,
)
from ._collector import (
    MetricsCollector as MetricsCollector,
    MonitoredPipeline as MonitoredPipeline,
)
from ._flatten import flatten_metrics as flatten_metrics
from ._monitor import (
    PerformanceMonitor as PerformanceMonitor,
    build_monitor as build_monitor,
    build_store as build_store,
)
from ._otel import RequestTracer as RequestTracer
from ._plain import (
    HistogramView as HistogramView,
    PlainCounter as PlainCounter,
    PlainFamily as PlainFamily,
    PlainHistogram as PlainHistogram,
)
from ._promrules import (
    prometheus_rules as prometheus_rules,
    prometheus_rules_yaml as prometheus_rules_yaml,
)
from ._recorder import (
    REQUEST_STAGES as REQUEST_STAGES,
    RequestRecorder as RequestRecorder,
    classify_error as classify_error,
    server_timing as server_timing,
)
from ._registry import (
    LATENCY_BUCKETS as LATENCY_BUCKETS,
    MetricsRegistry as MetricsRegistry,
    plain_family as plain_family,
)
from ._rules import (
    AlertStatus as AlertStatus,
    Notification as Notification,
    NotifiedState as NotifiedState,
    alert_transitions as alert_transitions,
    evaluate_alerts as evaluate_alerts,
    slo_burn_rate as slo_burn_rate,
)
from ._settings import (
    AlertRule as AlertRule,
    AlertSettings as AlertSettings,
    BurnWindow as BurnWindow,
    HistorySettings as HistorySettings,
    HistoryTier as HistoryTier,
    MonitoringSettings as MonitoringSettings,
    SLORule as SLORule,
    WebhookSettings as WebhookSettings,
)
from ._sqlite import SQLiteMetricsStore as SQLiteMetricsStore
from ._store import (
    MemoryMetricsStore as MemoryMetricsStore,
    MetricsStore as MetricsStore,
    Sample as Sample,
    Series as Series,
)
from ._system import SystemSampler as SystemSampler
