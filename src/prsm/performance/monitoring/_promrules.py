"""The alert rules of the config as a Prometheus rules file, for users who run Prometheus and
Alertmanager (``prsm-perf monitoring rules --config FILE``).

Threshold rules name history metrics (``application.error_rate``); each supported one has a
PromQL equivalent over the ``/metrics`` families (:data:`PROMQL`), summed across gateways.
SLOs become recording rules of their error ratio over every window they use
(``prsm:slo_error_ratio:rate<window>{slo="NAME"}``) and one alert per burn-rate window:
``ratio(long) > burn × (1 − objective) and ratio(short) > burn × (1 − objective)``.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import ConfigError
from ._plain import le_label
from ._settings import AlertRule, AlertSettings, BurnWindow, SLORule

_RATE = "[2m]"

#: PromQL for each history metric a threshold rule may name. ``{sel}`` takes the rule's label
#: filters (``node``, ``model``); ``{by}`` the labels the answer keeps.
PROMQL: dict[str, str] = {
    "application.request_rate": "sum{by}(rate(prsm_request_duration_seconds_count{sel}"
    + _RATE
    + "))",
    "application.error_rate": (
        "sum{by}(rate(prsm_request_duration_seconds_count{sel_outcome_error}" + _RATE + "))"
        " / sum{by}(rate(prsm_request_duration_seconds_count{sel}" + _RATE + "))"
    ),
    "application.response_time_p50": (
        "histogram_quantile(0.5, sum by (le{by_extra}) "
        "(rate(prsm_request_duration_seconds_bucket{sel}" + _RATE + ")))"
    ),
    "application.response_time_p95": (
        "histogram_quantile(0.95, sum by (le{by_extra}) "
        "(rate(prsm_request_duration_seconds_bucket{sel}" + _RATE + ")))"
    ),
    "application.response_time_p99": (
        "histogram_quantile(0.99, sum by (le{by_extra}) "
        "(rate(prsm_request_duration_seconds_bucket{sel}" + _RATE + ")))"
    ),
    "application.cache_hit_rate": (
        'sum(rate(prsm_cache_lookups_total{{result!="miss"}}' + _RATE + "))"
        " / sum(rate(prsm_cache_lookups_total" + _RATE + "))"
    ),
    "application.in_flight": "sum{by}(prsm_node_in_flight{sel})",
    "business.active_users": "max(prsm_active_users)",
    "business.tokens_per_s": "sum{by}(rate(prsm_tokens_sum{sel}" + _RATE + "))",
    "business.cost_per_s": "sum{by}(rate(prsm_cost_total{sel}" + _RATE + "))",
    "system.cpu_usage": "100 * max(prsm_system_cpu_usage_ratio)",
    "system.memory_usage": "100 * max(prsm_system_memory_usage_ratio)",
    "system.gpu_utilization": "avg(prsm_gpu_utilization_ratio)",
    "node.error_rate": (
        "sum by (node) (rate(prsm_node_failures_total{sel}" + _RATE + "))"
        " / sum by (node) (rate(prsm_node_latency_seconds_count{sel}" + _RATE + "))"
    ),
    "node.latency_p95": (
        "histogram_quantile(0.95, sum by (node, le) "
        "(rate(prsm_node_latency_seconds_bucket{sel}" + _RATE + ")))"
    ),
    "node.in_flight": "sum by (node) (prsm_node_in_flight{sel})",
    "node.breaker_state": "max by (node) (prsm_breaker_state{sel})",
}
# a per-model variant reads the same families, kept by model
for _name in ("request_rate", "error_rate", "response_time_p50", "response_time_p95",
              "response_time_p99"):  # fmt: skip
    PROMQL[f"model.{_name}"] = PROMQL[f"application.{_name}"]
PROMQL["model.tokens_per_s"] = PROMQL["business.tokens_per_s"]


def _duration(seconds: float) -> str:
    """A Prometheus duration (``5m``, ``1h``, ``90s``)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds)}s" if seconds >= 1 else f"{round(seconds * 1000)}ms"


def _selector(labels: dict[str, str], extra: str = "") -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def threshold_expr(rule: AlertRule) -> str:
    """The PromQL alert expression of a threshold rule."""
    template = PROMQL.get(rule.metric)
    if template is None:
        raise ConfigError(
            f"alerts.rules[{rule.name}].metric",
            f"{rule.metric!r} has no Prometheus equivalent; supported: {', '.join(sorted(PROMQL))}",
        )
    labels = dict(rule.labels)
    keep = [k for k in ("model", "node") if rule.metric.startswith(f"{k}.") or k in labels]
    if rule.metric.startswith("node."):
        keep = [k for k in keep if k != "node"]  # node.* templates keep node already
    by = f" by ({', '.join(keep)}) " if keep else ""
    expr = template.format(
        sel=_selector(labels),
        sel_outcome_error=_selector(labels, 'outcome="error"'),
        by=by,
        by_extra="".join(f", {k}" for k in keep),
    )
    return f"({expr}) {rule.condition} {rule.threshold:g}"


def slo_ratio(slo: SLORule, window: float, latency_objective: float) -> str:
    """PromQL of ``slo``'s bad-request ratio over ``window`` seconds (as
    :func:`~._rules.error_ratio` computes it from the history)."""
    w = f"[{_duration(window)}]"
    model = {"model": slo.model} if slo.model else {}
    total = f"sum(rate(prsm_request_duration_seconds_count{_selector(model)}{w}))"
    if slo.kind == "availability":
        errors = _selector(model, 'outcome="error"')
        bad = f"sum(rate(prsm_request_duration_seconds_count{errors}{w}))"
    else:
        answered = _selector(model, 'outcome!="error"')
        within = _selector(model, f'outcome!="error",le="{le_label(latency_objective)}"')
        bad = (
            f"(sum(rate(prsm_request_duration_seconds_count{answered}{w}))"
            f" - sum(rate(prsm_request_duration_seconds_bucket{within}{w})))"
        )
    return f"{bad} / {total}"


def _record_name(window: float) -> str:
    return f"prsm:slo_error_ratio:rate{_duration(window)}"


def _slo_groups(slo: SLORule, latency_objective: float) -> list[dict[str, Any]]:
    windows = sorted({w for bw in slo.windows for w in (bw.long, bw.short)})
    records = [
        {
            "record": _record_name(w),
            "expr": slo_ratio(slo, w, latency_objective),
            "labels": {"slo": slo.name},
        }
        for w in windows
    ]
    budget = 1.0 - slo.objective
    alerts = []
    for bw in slo.windows:
        alerts.append(_burn_alert(slo, bw, budget))
    return [
        {"name": f"prsm-slo-{slo.name}-ratios", "rules": records},
        {"name": f"prsm-slo-{slo.name}-alerts", "rules": alerts},
    ]


def _burn_alert(slo: SLORule, bw: BurnWindow, budget: float) -> dict[str, Any]:
    sel = f'{{slo="{_escape(slo.name)}"}}'
    limit = f"{bw.burn_rate:g} * {budget:.6g}"
    window = f"{_duration(bw.long)}/{_duration(bw.short)}"
    return {
        "alert": slo.name,
        "expr": (
            f"{_record_name(bw.long)}{sel} > ({limit})"
            f" and {_record_name(bw.short)}{sel} > ({limit})"
        ),
        "labels": {"severity": bw.severity, "slo_kind": slo.kind, "window": window},
        "annotations": {
            "summary": (
                f"SLO {slo.name} ({slo.kind}, objective {slo.objective:.4%}): error budget "
                f"burning over {bw.burn_rate:g}x over {window}"
            )
        },
    }


def prometheus_rules(settings: AlertSettings, latency_objective: float = 1.0) -> dict[str, Any]:
    """The rules file as a mapping (``groups``: recording and alerting rules)."""
    groups: list[dict[str, Any]] = []
    if settings.rules:
        rules = []
        for rule in settings.rules:
            entry: dict[str, Any] = {"alert": rule.name, "expr": threshold_expr(rule)}
            if rule.for_seconds > 0:
                entry["for"] = _duration(rule.for_seconds)
            entry["labels"] = {"severity": rule.severity}
            entry["annotations"] = {
                "summary": rule.summary or f"{rule.metric} {rule.condition} {rule.threshold:g}",
            }
            rules.append(entry)
        groups.append({"name": "prsm-alerts", "rules": rules})
    for slo in settings.slos:
        groups.extend(_slo_groups(slo, latency_objective))
    return {"groups": groups}


def prometheus_rules_yaml(settings: AlertSettings, latency_objective: float = 1.0) -> str:
    """The rules file's text (YAML), with a header saying where it came from."""
    body = yaml.safe_dump(prometheus_rules(settings, latency_objective), sort_keys=False, width=100)
    return (
        "# Prometheus rules generated by `prsm-perf monitoring rules` from the config's\n"
        "# `alerts` section (same rules as the gateway evaluates on its own history).\n" + body
    )
