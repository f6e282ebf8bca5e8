"""``PerformanceAnalytics``: trends, anomalies, capacity, bottleneck and insights from the
monitoring history (any :class:`~prsm.performance.monitoring.MetricsStore`).

``await analyze_performance_trends("24h")`` queries the watched metrics over the window (store
calls run in a worker thread), fits a :class:`TrendDetector` trend and runs an
:class:`AnomalyDetector` over every series, fits the capacity models (USL per node from
``node.in_flight`` / ``node.request_rate``; Erlang C for the fleet), finds where requests' time
goes (``stage.mean{stage}``), and returns the source post's dict: ``trends``, ``anomalies``,
``insights`` (with severity) and ``recommendations`` (see :mod:`._insights`), plus
``capacity`` and ``bottleneck``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..clock import Clock, SystemClock
from ..errors import ConfigError
from ..monitoring import MetricsStore
from ._capacity import UslFit, fit_usl
from ._detector import AnomalyDetector
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
CAPACITY_METRICS = ("node.in_flight", "node.latency_p50", "stage.mean")


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
        capacity = self._capacity(data)
        bottleneck = _bottleneck(data["stage.mean"], capacity)
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

    def _capacity(self, data: dict[str, list[SeriesData]]) -> dict[str, Any]:
        s = self.settings
        rate = _one(data["application.request_rate"])
        node_rates = {sd.labels.get("node", ""): sd for sd in data["node.request_rate"]}
        in_flight = {sd.labels.get("node", ""): sd for sd in data["node.in_flight"]}
        p50 = {sd.labels.get("node", ""): sd for sd in data["node.latency_p50"]}
        replicas = len(node_rates)
        nodes: dict[str, Any] = {}
        for node, sd in node_rates.items():
            info: dict[str, Any] = {"rate_now": _recent(sd.values)}
            fit = _usl_for(sd, in_flight.get(node))
            if fit is not None and math.isfinite(fit.peak_throughput):
                info.update(usl=fit.as_dict(), capacity=fit.peak_throughput, basis="usl")
            else:
                info.update(capacity=float(np.max(sd.values)), basis="observed peak")
            if node in p50:
                info["latency_p50"] = float(np.median(p50[node].values))
            info["utilization"] = info["rate_now"] / info["capacity"] if info["capacity"] else None
            nodes[node] = info
        out: dict[str, Any] = {"replicas": replicas, "nodes": nodes}
        out["node_rate_total"] = sum(n["rate_now"] for n in nodes.values())
        if rate is None or not nodes:
            return out
        caps = [n["capacity"] for n in nodes.values() if n["capacity"] > 0]
        lat = [n["latency_p50"] for n in nodes.values() if "latency_p50" in n]
        if not caps:
            return out
        mu = float(np.median(caps))
        out.update(
            arrival_rate_now=_recent(rate.values),
            arrival_rate_p95=float(np.percentile(rate.values, 95)),
            arrival_rate_trend=rate.trend,
            per_replica_capacity=mu,
            base_latency=float(np.median(lat)) if lat else None,
            latency_objective=s.latency_objective,
            latency_quantile=s.latency_quantile,
            utilization_now=_recent(rate.values) / (replicas * mu),
            utilization_p95=float(np.percentile(rate.values, 95)) / (replicas * mu),
            utilization_mean=float(np.mean(rate.values)) / (replicas * mu),
        )
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


def _one(series: list[SeriesData]) -> SeriesData | None:
    """The unlabelled series (or the first) of a metric."""
    for sd in series:
        if not sd.labels:
            return sd
    return series[0] if series else None


def _recent(values: np.ndarray) -> float:
    """The level at the end of the window: the mean of its last tenth (at least 3 points)."""
    k = max(3, len(values) // 10)
    return float(np.mean(values[-k:]))


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


def _usl_for(rate: SeriesData, in_flight: SeriesData | None) -> UslFit | None:
    if in_flight is None:
        return None
    common, i, j = np.intersect1d(rate.ts, in_flight.ts, return_indices=True)
    if len(common) < 3:
        return None
    try:
        return fit_usl(in_flight.values[j], rate.values[i])
    except ConfigError:
        return None  # too few distinct concurrencies to fit: capacity falls back to the peak


def _bottleneck(stages: list[SeriesData], capacity: Mapping[str, Any]) -> dict[str, Any]:
    means = {sd.labels.get("stage", "?"): float(np.mean(sd.values)) for sd in stages}
    total = sum(means.values())
    out: dict[str, Any] = {"stages": {}, "limiting_stage": None, "saturates_first": None}
    parts = []
    if total > 0:
        shares = {k: v / total for k, v in sorted(means.items(), key=lambda kv: -kv[1])}
        out["stages"] = {k: {"mean_s": means[k], "share": sh} for k, sh in shares.items()}
        stage = next(iter(shares))
        out["limiting_stage"] = stage
        parts.append(
            f"requests spend {shares[stage]:.0%} of their time in '{stage}' "
            f"(mean {means[stage] * 1000:.1f} ms of {total * 1000:.1f} ms)"
        )
    nodes = {n: v for n, v in capacity.get("nodes", {}).items() if v.get("utilization")}
    if nodes:
        node, info = max(nodes.items(), key=lambda kv: kv[1]["utilization"])
        out["saturates_first"] = node
        parts.append(
            f"node '{node}' saturates first: it serves {info['rate_now']:.3g} req/s of a "
            f"{info['capacity']:.3g} req/s capacity ({info['basis']}), "
            f"{info['utilization']:.0%} used"
        )
    out["sentence"] = ("The limit: " + "; ".join(parts) + ".") if parts else "No stage timings."
    return out
