"""Insights from analysed series and capacity, and the recommendations they lead to.

Pure functions. An insight is ``{"type", "severity", "metric", "labels", "message",
"evidence"}``; its evidence carries every figure its recommendation needs, so
:func:`generate_recommendations` reads nothing else. Every figure is computed from the
history (trends, anomalies, the fitted capacity) and the settings' cost model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from ._capacity import replicas_for_slo, wait_quantile
from ._settings import AnalyticsSettings

if TYPE_CHECKING:
    from ._analytics import SeriesData

# metric -> (insight type, the direction that is bad, bounded to [0, 1]?)
KINDS: dict[str, tuple[str, str, bool]] = {
    "application.response_time_p95": ("performance_degradation", "up", False),
    "node.latency_p95": ("performance_degradation", "up", False),
    "business.sla_compliance": ("performance_degradation", "down", True),
    "application.error_rate": ("rising_error_rate", "up", True),
    "node.error_rate": ("rising_error_rate", "up", True),
    "model.response_time_p95": ("performance_degradation", "up", False),
    "model.error_rate": ("rising_error_rate", "up", True),
    "application.cache_hit_rate": ("cache_hit_rate_collapse", "down", True),
    "business.cost_per_request": ("cost_creep", "up", False),
}
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}
DAY = 86400.0


def _severity(relative: float) -> str:
    r = abs(relative)
    if r >= 1.0:
        return "critical"
    if r >= 0.5:
        return "high"
    if r >= 0.25:
        return "medium"
    return "low"


def _change(sd: SeriesData) -> tuple[float, float, str] | None:
    """(level before, level now, source) when the series moved: a significant trend (levels of
    the window's first and last tenths), or a shift at its latest anomaly (levels before it and
    over the last tenth)."""
    k = max(3, len(sd.values) // 10)
    now = float(np.median(sd.values[-k:]))
    t = sd.trend
    if t is not None and t["direction"] != "no trend":
        return float(np.median(sd.values[:k])), now, "trend"
    if sd.anomaly_at:
        i = sd.anomaly_at[-1]
        if i >= 3:
            return float(np.median(sd.values[:i])), now, "anomaly"
    return None


def generate_insights(
    series: Mapping[str, SeriesData],
    capacity: Mapping[str, Any],
    bottleneck: Mapping[str, Any],
    s: AnalyticsSettings,
) -> list[dict[str, Any]]:
    """Insights from the series' movements and the fleet's capacity, most severe first."""
    out: list[dict[str, Any]] = []
    cap = {k: v for k, v in capacity.items() if k != "nodes"}
    for sd in series.values():
        if sd.metric not in KINDS:
            continue
        kind, bad, bounded = KINDS[sd.metric]
        moved = _change(sd)
        if moved is None:
            continue
        before, now, source = moved
        delta = now - before
        if (delta > 0) != (bad == "up") or delta == 0:
            continue
        relative = delta / abs(before) if before else math.inf
        if abs(relative) < s.min_change or (bounded and abs(delta) < 0.01):
            continue
        severity = _severity(relative)
        if sd.metric == "application.response_time_p95" and now > s.latency_objective:
            severity = "critical"
        evidence: dict[str, Any] = {"before": before, "now": now, "relative_change": relative}
        evidence.update(source=source, trend=sd.trend, capacity=cap, bottleneck=bottleneck)
        if kind == "rising_error_rate" and "node" in sd.labels:
            evidence["node"] = capacity.get("nodes", {}).get(sd.labels["node"], {})
        out.append(
            {
                "type": kind,
                "severity": severity,
                "metric": sd.metric,
                "labels": sd.labels,
                "message": f"{sd.key} went from {before:.4g} to {now:.4g} "
                f"({relative:+.0%}, {source})",
                "evidence": evidence,
            }
        )
    out.extend(_capacity_insights(cap, bottleneck, s))
    out.sort(key=lambda i: SEVERITY_ORDER[i["severity"]])
    return out


def _capacity_insights(
    cap: Mapping[str, Any], bottleneck: Mapping[str, Any], s: AnalyticsSettings
) -> list[dict[str, Any]]:
    if "utilization_p95" not in cap:
        return []
    out = []
    base = {"capacity": cap, "bottleneck": bottleneck}
    u95 = cap["utilization_p95"]
    if u95 < s.scale_down_utilization and cap["replicas"] > 1:
        out.append(
            {
                "type": "resource_underutilization",
                "severity": "medium" if u95 < s.scale_down_utilization / 2 else "low",
                "metric": "application.request_rate",
                "labels": {},
                "message": f"the fleet's busiest load (p95) uses {u95:.0%} of "
                f"{cap['replicas']} replicas' capacity",
                "evidence": {"utilization_p95": u95, **base},
            }
        )
    trend = cap.get("arrival_rate_trend")
    total = cap.get("fleet_capacity", cap["replicas"] * cap["per_replica_capacity"])
    limit = s.scale_up_utilization * total
    now = cap["arrival_rate_now"]
    if now >= limit:
        eta = 0.0
    elif trend and trend["direction"] == "increasing" and trend["slope_per_s"] > 0:
        eta = (limit - now) / trend["slope_per_s"]
    else:
        return out
    if eta <= s.saturation_horizon:
        slope = trend["slope_per_s"] if trend else 0.0
        projected = now + max(slope, 0.0) * s.period
        out.append(
            {
                "type": "saturation_ahead",
                "severity": "critical" if eta < DAY else "high" if eta < 3 * DAY else "medium",
                "metric": "application.request_rate",
                "labels": {},
                "message": f"load reaches {s.scale_up_utilization:.0%} of capacity "
                + ("now" if eta == 0 else f"in {eta / 3600:.1f} h at the current trend")
                + (" (the gateway's CPU ceiling)" if cap.get("binding") == "gateway_cpu" else ""),
                "evidence": {
                    "seconds_to_saturation": eta,
                    "rate_limit": limit,
                    "projected_rate": projected,
                    **base,
                },
            }
        )
    return out


def _sizing(cap: Mapping[str, Any], rate: float, s: AnalyticsSettings) -> dict[str, Any] | None:
    """Replicas needed at ``rate``: the SLO by Erlang C, and utilisation under the scale-up
    threshold (None: no capacity model, or an objective no replica count can meet because
    the unloaded latency already exceeds it)."""
    mu = cap.get("per_replica_capacity")
    if not mu:
        return None
    service = 1.0 / mu
    base = cap.get("base_latency") or 0.0
    budget = s.latency_objective - base
    if budget <= 0:
        return None
    try:
        need = replicas_for_slo(rate, service, budget + service, s.latency_quantile)
    except ConfigError:
        return None
    need = max(need, math.ceil(rate / (s.scale_up_utilization * mu)))
    c = int(cap["replicas"])
    q = s.latency_quantile
    return {
        "replicas_now": c,
        "replicas_needed": need,
        "arrival_rate": rate,
        "utilization_now": rate / (c * mu) if c else math.inf,
        "utilization_after": rate / (need * mu),
        "latency_q_now_s": base + wait_quantile(c, rate, service, q) if c else math.inf,
        "latency_q_after_s": base + wait_quantile(need, rate, service, q),
    }


def _gateway_sizing(
    cap: Mapping[str, Any], rate: float, s: AnalyticsSettings
) -> dict[str, Any] | None:
    """Gateway processes needed at ``rate`` when the gateway's CPU binds the fleet: each
    process's CPU ceiling kept under the scale-up threshold (None when it does not bind or
    the current processes suffice)."""
    gw = cap.get("gateway")
    if gw is None or cap.get("binding") != "gateway_cpu" or not gw["cpu_ceiling"] > 0:
        return None
    if rate <= s.scale_up_utilization * gw["cpu_ceiling"]:
        return None
    per_process = gw["cpu_ceiling"] / gw["processes"]
    need = math.ceil(rate / (s.scale_up_utilization * per_process))
    out = {
        "processes_now": gw["processes"],
        "processes_needed": need,
        "arrival_rate": rate,
        "cpu_seconds_per_request": gw["cpu_seconds_per_request"],
        "cpu_ceiling_now": gw["cpu_ceiling"],
        "cpu_ceiling_after": need * per_process,
        "utilization_now": rate / gw["cpu_ceiling"],
        "utilization_after": rate / (need * per_process),
    }
    machine = gw.get("machine_cores")
    if machine is not None and need * gw["cores_per_process"] > machine:
        out["machines_needed"] = math.ceil(need * gw["cores_per_process"] / machine)
    return out


def _priority(severity: str) -> str:
    return severity


def generate_recommendations(
    insights: list[dict[str, Any]], s: AnalyticsSettings
) -> list[dict[str, Any]]:
    """One action per insight (``scale_up``, ``scale_down``, ``drain_node``,
    ``add_gateway_processes`` (the gateway's CPU binds), ``investigate_bottleneck``,
    ``investigate_errors``, ``investigate_cache``, ``review_costs``), with
    ``estimated_impact`` or ``potential_savings`` from the evidence."""
    out: list[dict[str, Any]] = []
    for ins in insights:
        rec = _recommend(ins, s)
        if rec is not None:
            out.append(rec)
    out.sort(key=lambda r: SEVERITY_ORDER[r["priority"]])
    return out


def _recommend(ins: Mapping[str, Any], s: AnalyticsSettings) -> dict[str, Any] | None:
    kind, ev = ins["type"], ins["evidence"]
    cap = ev.get("capacity", {})
    rec: dict[str, Any] = {"priority": _priority(ins["severity"]), "reason": ins["message"]}
    rec["insight"] = kind
    if kind in ("performance_degradation", "saturation_ahead"):
        rate = cap.get("arrival_rate_p95", 0.0)
        if kind == "saturation_ahead":  # the load the trend reaches one period ahead
            rate = max(rate, ev["projected_rate"])
        gateway = _gateway_sizing(cap, rate, s) if cap else None
        if gateway is not None:
            add = gateway["processes_needed"] - gateway["processes_now"]
            return {
                **rec,
                "action": "add_gateway_processes",
                "processes": add,
                "estimated_impact": gateway,
            }
        sizing = _sizing(cap, rate, s) if cap else None
        if sizing and sizing["replicas_needed"] > sizing["replicas_now"]:
            add = sizing["replicas_needed"] - sizing["replicas_now"]
            return {**rec, "action": "scale_up", "replicas": add, "estimated_impact": sizing}
        bottleneck = ev.get("bottleneck", {})
        impact = {
            "limiting_stage": bottleneck.get("limiting_stage"),
            "stages": bottleneck.get("stages", {}),
        }
        if sizing:
            impact["capacity"] = sizing
        return {**rec, "action": "investigate_bottleneck", "estimated_impact": impact}
    if kind == "resource_underutilization":
        sizing = _sizing(cap, cap.get("arrival_rate_p95", 0.0), s)
        if sizing is None or sizing["replicas_needed"] >= sizing["replicas_now"]:
            return None
        remove = sizing["replicas_now"] - sizing["replicas_needed"]
        savings: dict[str, Any] = {
            "replicas": remove,
            "capacity_share": remove / sizing["replicas_now"],
        }
        if s.replica_cost_per_hour is not None:
            savings["per_day"] = remove * s.replica_cost_per_hour * 24
            savings["per_month"] = remove * s.replica_cost_per_hour * 730
        return {
            **rec,
            "action": "scale_down",
            "replicas": remove,
            "potential_savings": savings,
            "estimated_impact": sizing,
        }
    if kind == "rising_error_rate":
        node = ev.get("node") or {}
        labels = ins["labels"]
        if "node" in labels and node.get("rate_now") and cap.get("node_rate_total"):
            share = node["rate_now"] / cap["node_rate_total"]
            impact = {
                "node": labels["node"],
                "traffic_share": share,
                "fleet_error_rate_reduction": ev["now"] * share,
            }
            return {**rec, "action": "drain_node", "target": labels, "estimated_impact": impact}
        impact = {"error_rate_now": ev["now"], "error_rate_before": ev["before"]}
        return {**rec, "action": "investigate_errors", "target": labels, "estimated_impact": impact}
    if kind == "cache_hit_rate_collapse":
        lost = (ev["before"] - ev["now"]) * cap.get("arrival_rate_now", 0.0) * DAY
        impact = {
            "hit_rate_before": ev["before"],
            "hit_rate_now": ev["now"],
            "extra_upstream_requests_per_day": lost,
        }
        return {**rec, "action": "investigate_cache", "estimated_impact": impact}
    if kind == "cost_creep":
        per_day = (ev["now"] - ev["before"]) * cap.get("arrival_rate_now", 0.0) * DAY
        savings = {"per_day": per_day, "per_request": ev["now"] - ev["before"]}
        return {
            **rec,
            "action": "review_costs",
            "target": ins["labels"],
            "potential_savings": savings,
        }
    return None
