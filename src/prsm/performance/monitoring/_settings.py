"""Settings of monitoring (config sections ``monitoring``, ``history`` and ``alerts``).

Imports only the standard library and :mod:`prsm.performance.errors`, so ``config.py`` can
import it without a cycle. Durations are seconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from ..errors import ConfigError

#: Comparison operators an alert rule may use.
CONDITIONS: tuple[str, ...] = (">", ">=", "<", "<=", "==", "!=")
#: Severities, least to most urgent.
SEVERITIES: tuple[str, ...] = ("info", "ticket", "warning", "page", "critical")
#: What an SLO counts as a bad request.
SLO_KINDS: tuple[str, ...] = ("availability", "latency")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(name, f"must be a number > 0, got {value!r}")


def check_labels(labels: Mapping[str, Any], field_name: str = "labels") -> dict[str, str]:
    """``labels`` as a plain ``{name: value}`` of strings, names checked."""
    if not isinstance(labels, Mapping):
        raise ConfigError(field_name, f"must be a mapping of label names to values, got {labels!r}")
    out: dict[str, str] = {}
    for k, v in labels.items():
        if not isinstance(k, str) or not _LABEL.match(k):
            raise ConfigError(field_name, f"bad label name {k!r}: letters, digits and _ only")
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            raise ConfigError(f"{field_name}.{k}", f"must be a string, got {v!r}")
        out[k] = str(v)
    return out


@dataclass(frozen=True, slots=True)
class MonitoringSettings:
    """What the gateway measures and how often (section ``monitoring``).

    ``enabled`` runs the collection loop (system, application and business metrics every
    ``orchestrator.monitoring_interval``, into the history, then the alert rules); request
    recording and ``/metrics`` are always on. ``latency_objective`` is the SLA: a request
    within it counts toward ``sla_compliance``. ``active_users_window`` is how far back a
    tenant counts as active. ``label_limit`` bounds the distinct models and nodes in labels.
    ``server_timing`` adds a ``Server-Timing`` header with each request's stages (opt-in: it
    costs a few µs a request, several % of a saturated gateway's peak).
    ``gpu`` reads GPUs through NVML. ``provider`` is the ``gen_ai_provider_name`` label.
    ``traces`` exports each request with its stages as OpenTelemetry spans (the ``otel``
    extra), over OTLP/HTTP to ``otlp_endpoint`` (default: the SDK's, from
    ``OTEL_EXPORTER_OTLP_ENDPOINT``) as service ``service_name``.
    """

    enabled: bool = True
    latency_objective: float = 1.0
    active_users_window: float = 300.0
    label_limit: int = 100
    server_timing: bool = False
    gpu: bool = True
    provider: str = "openai"
    traces: bool = False
    otlp_endpoint: str | None = None
    service_name: str = "prsm-gateway"

    def __post_init__(self) -> None:
        for name in ("enabled", "server_timing", "gpu", "traces"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, f"must be true or false, got {getattr(self, name)!r}")
        _positive("latency_objective", self.latency_objective)
        _positive("active_users_window", self.active_users_window)
        if not isinstance(self.label_limit, int) or self.label_limit < 1:
            raise ConfigError("label_limit", f"must be an integer >= 1, got {self.label_limit!r}")
        if not isinstance(self.provider, str) or not self.provider:
            raise ConfigError("provider", f"must be a non-empty string, got {self.provider!r}")
        if self.otlp_endpoint is not None and not self.otlp_endpoint.startswith(
            ("http://", "https://")
        ):
            raise ConfigError(
                "otlp_endpoint", f"must be an http(s):// URL, got {self.otlp_endpoint!r}"
            )


@dataclass(frozen=True, slots=True)
class HistoryTier:
    """One resolution of the history: points ``step`` seconds apart, kept ``retention``."""

    step: float
    retention: float

    def __post_init__(self) -> None:
        _positive("step", self.step)
        _positive("retention", self.retention)
        if self.retention < self.step:
            raise ConfigError("retention", f"must be >= step ({self.step}), got {self.retention!r}")


DEFAULT_TIERS = (
    HistoryTier(1.0, 3600.0),  # 1 s for an hour
    HistoryTier(60.0, 7 * 86400.0),  # 1 min for a week
    HistoryTier(3600.0, 365 * 86400.0),  # 1 h for a year
)


@dataclass(frozen=True, slots=True)
class HistorySettings:
    """The metrics history (section ``history``): an embedded SQLite store (WAL) in the data
    directory, or at ``path``.

    ``tiers`` are its resolutions, finest first: each ``step`` a whole multiple of the one
    before, each ``retention`` at least the one before. ``flush_interval`` is how often the
    monitor writes what it collected (a restart loses at most that much). ``max_series``
    bounds the distinct series (new ones past it are dropped and counted), so the store
    never grows without bound. ``backend`` is ``sqlite`` or ``memory`` (nothing on disk).
    """

    enabled: bool = True
    backend: str = "sqlite"
    path: str | None = None
    flush_interval: float = 1.0
    tiers: tuple[HistoryTier, ...] = DEFAULT_TIERS
    max_series: int = 5000

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError("enabled", f"must be true or false, got {self.enabled!r}")
        if self.backend not in ("sqlite", "memory"):
            raise ConfigError("backend", f"must be 'sqlite' or 'memory', got {self.backend!r}")
        _positive("flush_interval", self.flush_interval)
        if not isinstance(self.max_series, int) or self.max_series < 1:
            raise ConfigError("max_series", f"must be an integer >= 1, got {self.max_series!r}")
        check_tiers(self.tiers)


def check_tiers(tiers: tuple[HistoryTier, ...]) -> None:
    """Raise :class:`ConfigError` unless ``tiers`` are finest first, each step a multiple of
    the previous one and each retention at least the previous one."""
    if not tiers:
        raise ConfigError("tiers", "needs at least one tier")
    for i, (a, b) in enumerate(pairwise(tiers)):
        ratio = b.step / a.step
        if b.step <= a.step or abs(ratio - round(ratio)) > 1e-9:
            raise ConfigError(
                f"tiers[{i + 1}].step",
                f"must be a whole multiple > 1 of tiers[{i}].step ({a.step}), got {b.step}",
            )
        if b.retention < a.retention:
            raise ConfigError(
                f"tiers[{i + 1}].retention",
                f"must be >= tiers[{i}].retention ({a.retention}), got {b.retention}",
            )


@dataclass(frozen=True, slots=True)
class AlertRule:
    """Fire when ``metric`` (a history metric, e.g. ``application.error_rate``; series
    whose labels include ``labels``) satisfies ``condition`` ``threshold`` for ``for_seconds``.
    Each matching series is its own alert."""

    name: str
    metric: str
    condition: str
    threshold: float
    for_seconds: float = 0.0
    severity: str = "warning"
    labels: Mapping[str, str] = field(default_factory=dict)
    summary: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError("name", f"must be a name (letters, digits, _.:-), got {self.name!r}")
        if not isinstance(self.metric, str) or not _NAME.match(self.metric):
            raise ConfigError("metric", f"must be a history metric name, got {self.metric!r}")
        if self.condition not in CONDITIONS:
            raise ConfigError(
                "condition", f"must be one of {', '.join(CONDITIONS)}, got {self.condition!r}"
            )
        if not isinstance(self.threshold, (int, float)) or not math.isfinite(self.threshold):
            raise ConfigError("threshold", f"must be a finite number, got {self.threshold!r}")
        if not self.for_seconds >= 0:
            raise ConfigError("for_seconds", f"must be >= 0, got {self.for_seconds!r}")
        _severity(self.severity)
        object.__setattr__(self, "labels", check_labels(self.labels))


def _severity(value: str) -> None:
    if value not in SEVERITIES:
        raise ConfigError("severity", f"must be one of {', '.join(SEVERITIES)}, got {value!r}")


@dataclass(frozen=True, slots=True)
class BurnWindow:
    """One multi-window burn-rate condition: the error budget burns faster than ``burn_rate``
    times the sustainable rate over both the ``long`` and the ``short`` window."""

    long: float
    short: float
    burn_rate: float
    severity: str = "page"

    def __post_init__(self) -> None:
        _positive("long", self.long)
        _positive("short", self.short)
        _positive("burn_rate", self.burn_rate)
        if self.short >= self.long:
            raise ConfigError("short", f"must be < long ({self.long}), got {self.short!r}")
        _severity(self.severity)


#: The SRE workbook's multi-window, multi-burn-rate set for a 30-day SLO: 2 % of the budget
#: in an hour or 5 % in six hours pages; 10 % in three days opens a ticket.
WORKBOOK_WINDOWS = (
    BurnWindow(3600.0, 300.0, 14.4, "page"),
    BurnWindow(21600.0, 1800.0, 6.0, "page"),
    BurnWindow(259200.0, 21600.0, 1.0, "ticket"),
)


@dataclass(frozen=True, slots=True)
class SLORule:
    """A service-level objective: at least ``objective`` of requests are good over ``period``.

    ``kind`` ``availability``: a failed request is bad; ``latency``: one slower than
    ``monitoring.latency_objective`` is bad. ``model`` restricts it to one model (empty:
    every request). Alerts follow ``windows`` (the SRE workbook's by default).
    """

    name: str
    objective: float
    kind: str = "availability"
    model: str = ""
    period: float = 30 * 86400.0
    windows: tuple[BurnWindow, ...] = WORKBOOK_WINDOWS

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError("name", f"must be a name (letters, digits, _.:-), got {self.name!r}")
        if not (isinstance(self.objective, (int, float)) and 0 < self.objective < 1):
            raise ConfigError(
                "objective", f"must be a fraction in (0, 1), e.g. 0.999, got {self.objective!r}"
            )
        if self.kind not in SLO_KINDS:
            raise ConfigError("kind", f"must be one of {', '.join(SLO_KINDS)}, got {self.kind!r}")
        _positive("period", self.period)
        if not self.windows:
            raise ConfigError("windows", "needs at least one burn-rate window")


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """Where alert notifications are POSTed (Alertmanager's webhook JSON).

    With ``secret_env`` set, each request carries ``x-prsm-timestamp`` and
    ``x-prsm-signature: sha256=HEX``, the HMAC-SHA256 of ``"<timestamp>." + body`` under the
    secret read from that environment variable. A failed send is retried ``retries`` times,
    ``backoff`` seconds apart (doubling), each try bounded by ``timeout``. Only alerts of
    ``min_severity`` or above are sent.
    """

    url: str
    secret_env: str | None = None
    timeout: float = 5.0
    retries: int = 3
    backoff: float = 0.5
    min_severity: str = "info"

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise ConfigError("url", f"must be an http(s):// URL, got {self.url!r}")
        _positive("timeout", self.timeout)
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError("retries", f"must be an integer >= 0, got {self.retries!r}")
        if not self.backoff >= 0:
            raise ConfigError("backoff", f"must be >= 0, got {self.backoff!r}")
        _severity(self.min_severity)


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """Alerting (section ``alerts``): threshold ``rules``, ``slos`` with burn-rate alerts,
    and ``webhooks``; evaluated every monitoring interval on the history.

    A sample older than ``staleness`` seconds no longer counts (the series is absent).
    ``repeat_interval`` re-sends a still-firing alert (0: never). ``keep_resolved`` bounds
    the recent resolved alerts ``/admin/alerts`` shows. ``log`` writes each notification to
    the log (logger ``prsm.performance.alerts``).
    """

    rules: tuple[AlertRule, ...] = ()
    slos: tuple[SLORule, ...] = ()
    webhooks: tuple[WebhookSettings, ...] = ()
    staleness: float = 10.0
    repeat_interval: float = 4 * 3600.0
    keep_resolved: int = 100
    log: bool = True

    def __post_init__(self) -> None:
        _positive("staleness", self.staleness)
        if not self.repeat_interval >= 0:
            raise ConfigError("repeat_interval", f"must be >= 0, got {self.repeat_interval!r}")
        if not isinstance(self.keep_resolved, int) or self.keep_resolved < 0:
            raise ConfigError(
                "keep_resolved", f"must be an integer >= 0, got {self.keep_resolved!r}"
            )
        names = [r.name for r in self.rules] + [s.name for s in self.slos]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError("rules", f"alert names must be unique; repeated: {dup}")
