"""``PerformanceAnalytics``: trends, anomalies, capacity, bottleneck and insights from the
monitoring history (any :class:`~prsm.performance.monitoring.MetricsStore`).

``await analyze_performance_trends("24h")`` queries the watched metrics over the window (store
calls run in a worker thread), fits a :class:`TrendDetector` trend and runs an
:class:`AnomalyDetector` over every series, fits the capacity models (USL per node from
``node.in_flight`` / ``node.request_rate``, bounded by the gateway's CPU ceiling; Erlang C for
the fleet; see :mod:`._fleet`), finds where requests' time
goes (``stage.mean{stage}``), and returns the source post's dict: ``trends``, ``anomalies``,
``insights`` (with severity) and ``recommendations`` (see :mod:`._insights`), plus
``capacity`` and ``bottleneck``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..clock import Clock, SystemClock
from ..errors import ConfigError
from ..monitoring import MetricsStore
from ._detector import AnomalyDetector
from ._fleet import bottleneck as find_bottleneck, fleet_capacity
from ._insights import generate_insights, generate_recommendations
from ._settings import AnalyticsSettings
from ._trend import TrendDetector, TrendSettings

# Watched metrics: which way is bad (None: context only).
WATCH: dict[str, str | None] = {
    "application.response_time_p95": "up",
    "application.error_rate": "up",
    "application.cache_hit_rate": "down",
    "application.request_rate": None,
    "business.cost_per_request": "up",
    "business.sla_compliance": "down",
    "system.cpu_usage": None,
    "system.memory_usage": None,
    "node.latency_p95": "up",
    "node.error_rate": "up",
    "node.request_rate": None,
    "model.response_time_p95": "up",
    "model.error_rate": "up",
}
CAPACITY_METRICS = (
    "node.in_flight",
    "node.latency_p50",
    "stage.mean",
    "system.process_cpu_usage",
    "system.cpu_count",
)


@dataclass(slots=True)
class SeriesData:
    """One analysed series: its points, anomaly scores and trend."""

    metric: str
    labels: dict[str, str]
    ts: np.ndarray
    values: np.ndarray
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    anomaly_at: list[int] = field(default_factory=list)
    trend: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return series_key(self.metric, self.labels)


def series_key(metric: str, labels: Mapping[str, str]) -> str:
    if not labels:
        return metric
    return metric + "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"


class PerformanceAnalytics:
    """The post's analytics over a metrics history."""

    def __init__(
        self,
        store: MetricsStore | None = None,
        settings: AnalyticsSettings | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        if store is None:
            from ..monitoring import MemoryMetricsStore

            store = MemoryMetricsStore()
        self.store = store
        self.settings = settings or AnalyticsSettings()
        self.clock = clock or SystemClock()
        self.series: dict[str, SeriesData] = {}
        """The series of the last analysis (for reports and charts)."""

    async def analyze_performance_trends(
        self, time_period: float | str | None = None
    ) -> dict[str, Any]:
        """Analyse the last ``time_period`` (seconds or ``"24h"``, ``"7d"``; default the
        settings' ``period``)."""
        seconds = _period(time_period, self.settings.period)
        until = self.clock.time()
        return await asyncio.to_thread(self._analyze, until - seconds, until)

    def generate_recommendations(self, insights: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Actions for ``insights`` (``scale_up``, ``scale_down``, …), most urgent first."""
        return generate_recommendations(insights, self.settings)

    def _analyze(self, since: float, until: float) -> dict[str, Any]:
        s = self.settings
        data: dict[str, list[SeriesData]] = {}
        for metric in (*WATCH, *CAPACITY_METRICS):
            data[metric] = self._query(metric, since, until)
        span = until - since
        seasonal = (
            s.seasonal_period if s.seasonal_period and span >= 2 * s.seasonal_period else None
        )
        trend_detector = TrendDetector(TrendSettings(alpha=s.alpha, period=seasonal))
        trends: dict[str, dict[str, Any]] = {}
        anomalies: dict[str, list[dict[str, Any]]] = {}
        self.series = {}
        for metric in WATCH:
            for sd in data[metric]:
                self.series[sd.key] = sd
                if len(sd.ts) >= trend_detector.settings.min_points:
                    sd.trend = trend_detector.analyze(sd.ts, sd.values).as_dict()
                    trends[sd.key] = sd.trend
                found = _anomalies(sd)
                if found:
                    anomalies[sd.key] = found
        _keep_latest(anomalies, s.max_anomalies)

        def trend_of(sd: SeriesData) -> dict[str, Any] | None:
            if len(sd.ts) < trend_detector.settings.min_points:
                return None
            return trend_detector.analyze(sd.ts, sd.values).as_dict()

        capacity = fleet_capacity(data, s, trend_of)
        bottleneck = find_bottleneck(data["stage.mean"], capacity)
        insights = generate_insights(self.series, capacity, bottleneck, s)
        return {
            "period": {"since": since, "until": until, "seconds": span, "seasonal": seasonal},
            "trends": trends,
            "anomalies": anomalies,
            "insights": insights,
            "capacity": capacity,
            "bottleneck": bottleneck,
            "recommendations": generate_recommendations(insights, s),
        }

    def _query(self, metric: str, since: float, until: float) -> list[SeriesData]:
        found = self.store.query(metric, since=since, until=until, step=self.settings.step)
        out = []
        for series in found:
            if not series.points:
                continue
            arr = np.asarray(series.points, dtype=np.float64)
            out.append(SeriesData(metric, dict(series.labels), arr[:, 0], arr[:, 1]))
        return out


def _period(time_period: float | str | None, default: float) -> float:
    if time_period is None:
        return default
    if isinstance(time_period, (int, float)):
        seconds = float(time_period)
    else:
        from ..monitoring._admin import parse_duration

        seconds = parse_duration(time_period, "time_period")
    if not seconds > 0:
        raise ConfigError("time_period", f"must be > 0, got {time_period!r}")
    return seconds


def _anomalies(sd: SeriesData) -> list[dict[str, Any]]:
    det = AnomalyDetector()
    out = []
    scores = np.zeros(len(sd.values))
    for i, (t, v) in enumerate(zip(sd.ts.tolist(), sd.values.tolist(), strict=True)):
        scores[i] = det.update(v, t)
        if det.kind != "none":
            sd.anomaly_at.append(i)
            out.append({"ts": t, "value": v, "score": scores[i], "kind": det.kind})
    sd.scores = scores
    return out


def _keep_latest(anomalies: dict[str, list[dict[str, Any]]], limit: int) -> None:
    flat = sorted(
        ((a["ts"], key, a) for key, items in anomalies.items() for a in items),
        key=lambda x: x[0],
        reverse=True,
    )[:limit]
    keep: dict[str, list[dict[str, Any]]] = {}
    for _, key, a in sorted(flat, key=lambda x: x[0]):
        keep.setdefault(key, []).append(a)
    anomalies.clear()
    anomalies.update(keep)
