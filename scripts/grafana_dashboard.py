"""Writes deploy/grafana/prsm-dashboard.json: the Grafana dashboard over the gateway's
``/metrics`` names (``python scripts/grafana_dashboard.py``). Import it in Grafana
(Dashboards → New → Import) and pick the Prometheus data source that scrapes the gateways.

Ratios across several gateways are computed per gateway (``instance``) and then averaged
(``avg``), never summed: a cache hit rate of 0.8 on each of three gateways is 0.8, not 2.4.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "prsm-dashboard.json"
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
R = "[$__rate_interval]"
DUR = "prsm_request_duration_seconds"
LOOK = "prsm_cache_lookups_total"
MODEL = "gen_ai_request_model"
ERR = 'outcome="error"'
OK = 'outcome!="error"'
HIT = 'result!="miss"'
_next_id = iter(range(1, 1000))


def panel(
    title: str,
    targets: list[tuple[str, str]],
    *,
    unit: str = "short",
    x: int,
    y: int,
    w: int = 12,
    h: int = 8,
    kind: str = "timeseries",
    description: str = "",
) -> dict[str, Any]:
    return {
        "id": next(_next_id),
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(65 + i), "datasource": DS, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def row(title: str, y: int) -> dict[str, Any]:
    return {"id": next(_next_id), "type": "row", "title": title, "collapsed": False,
            "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}  # fmt: skip


def q(quantile: float, family: str, by: str = "") -> str:
    keep = f"le, {by}" if by else "le"
    return f"histogram_quantile({quantile}, sum by ({keep}) (rate({family}_bucket{R})))"


def dashboard() -> dict[str, Any]:
    panels = [
        row("Overview", 0),
        panel("Requests per second, by model", [
            (f"sum by (model) (rate(prsm_request_duration_seconds_count{R}))", "{{model}}"),
        ], unit="reqps", x=0, y=1),
        panel("Errors per second, by model and type", [
            (f"sum by (model, error_type) (rate({DUR}_count{{{ERR}}}{R}))",
             "{{model}} {{error_type}}"),
            (f'sum by (status) (rate(prsm_gateway_requests_total{{status=~"4..|5.."}}{R}))',
             "gateway {{status}}"),
        ], unit="reqps", x=12, y=1),
        panel("Response time (all models)", [
            (q(0.5, "prsm_request_duration_seconds"), "p50"),
            (q(0.95, "prsm_request_duration_seconds"), "p95"),
            (q(0.99, "prsm_request_duration_seconds"), "p99"),
        ], unit="s", x=0, y=9),
        panel("SLA compliance (share within the latency objective)", [
            (f'sum(rate({DUR}_bucket{{le="$latency_objective",{OK}}}{R}))'
             f" / sum(rate({DUR}_count{R}))", "within $latency_objective s"),
        ], unit="percentunit", x=12, y=9),
        row("Models", 17),
        panel("p95 response time, by model", [
            (q(0.95, "prsm_request_duration_seconds", "model"), "{{model}}"),
        ], unit="s", x=0, y=18),
        panel("Time to first token (streams), by model", [
            (q(0.5, "gen_ai_server_time_to_first_token_seconds", "gen_ai_request_model"),
             "p50 {{gen_ai_request_model}}"),
            (q(0.95, "gen_ai_server_time_to_first_token_seconds", "gen_ai_request_model"),
             "p95 {{gen_ai_request_model}}"),
        ], unit="s", x=12, y=18),
        panel("Tokens per second, by model and type", [
            (f"sum by ({MODEL}, gen_ai_token_type) (rate(gen_ai_client_token_usage_sum{R}))",
             "{{gen_ai_request_model}} {{gen_ai_token_type}}"),
        ], unit="short", x=0, y=26),
        panel("Time per output token (streams), by model", [
            (q(0.5, "gen_ai_server_time_per_output_token_seconds", "gen_ai_request_model"),
             "p50 {{gen_ai_request_model}}"),
            (q(0.5, "prsm_inter_chunk_seconds", "model"), "inter-chunk p50 {{model}}"),
        ], unit="s", x=12, y=26),
        panel("Spend per hour, by model (node prices × tokens)", [
            (f"3600 * sum by (model) (rate(prsm_cost_total{R}))", "{{model}}"),
        ], unit="currencyUSD", x=0, y=34),
        panel("Active users (distinct tenants in the window)", [
            ("max(prsm_active_users)", "active users"),
        ], unit="short", x=12, y=34),
        row("Cache", 42),
        panel("Cache hit rate (averaged across gateways)", [
            (f'avg(sum by (instance) (rate(prsm_cache_lookups_total{{result!="miss"}}{R}))'
             f" / sum by (instance) (rate(prsm_cache_lookups_total{R})))", "hit rate"),
        ], unit="percentunit", x=0, y=43),
        panel("Cache hit rate by tier (averaged across gateways)", [
            (f"avg by (result) (sum by (instance, result) (rate({LOOK}{{{HIT}}}{R}))"
             f" / ignoring(result) group_left sum by (instance) (rate({LOOK}{R})))",
             "{{result}}"),
        ], unit="percentunit", x=12, y=43),
        row("Nodes", 51),
        panel("Requests per second, by node", [
            (f"sum by (node) (rate(prsm_node_latency_seconds_count{R}))", "{{node}}"),
        ], unit="reqps", x=0, y=52),
        panel("p95 latency, by node", [
            (q(0.95, "prsm_node_latency_seconds", "node"), "{{node}}"),
        ], unit="s", x=12, y=52),
        panel("Failures per second, by node", [
            (f"sum by (node) (rate(prsm_node_failures_total{R}))", "{{node}}"),
        ], unit="reqps", x=0, y=60),
        panel("In flight, by node", [
            ("sum by (node) (prsm_node_in_flight)", "{{node}}"),
        ], unit="short", x=12, y=60),
        panel("Breaker state, by node (0 closed, 1 half-open, 2 open)", [
            ("max by (node) (prsm_breaker_state)", "{{node}}"),
        ], unit="short", x=0, y=68),
        panel("Routing score, by node", [
            ("avg by (node) (prsm_node_score)", "{{node}}"),
        ], unit="short", x=12, y=68),
        row("Where the time goes", 76),
        panel("Mean time per stage", [
            (f"sum by (stage) (rate(prsm_request_stage_seconds_sum{R}))"
             f" / sum by (stage) (rate(prsm_request_stage_seconds_count{R}))", "{{stage}}"),
        ], unit="s", x=0, y=77),
        panel("Gateway's own time per request", [
            (q(0.5, "prsm_gateway_added_seconds"), "p50"),
            (q(0.99, "prsm_gateway_added_seconds"), "p99"),
        ], unit="s", x=12, y=77),
        row("Machine", 85),
        panel("CPU and memory, by gateway", [
            ("prsm_system_cpu_usage_ratio", "cpu {{instance}}"),
            ("prsm_system_memory_usage_ratio", "memory {{instance}}"),
        ], unit="percentunit", x=0, y=86),
        panel("GPU utilisation and memory", [
            ("avg by (gpu) (prsm_gpu_utilization_ratio)", "util gpu {{gpu}}"),
            ("avg by (gpu) (prsm_gpu_memory_usage_ratio)", "memory gpu {{gpu}}"),
        ], unit="percentunit", x=12, y=86),
    ]  # fmt: skip
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            },
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
        ],
        "id": None,
        "uid": "prsm-performance",
        "title": "PRSM Performance gateway",
        "description": "Requests, latency, TTFT, tokens, cost, cache, nodes and stages of "
        "PRSM Performance gateways (prsm_* and OpenTelemetry GenAI metrics).",
        "tags": ["prsm", "llm", "gateway"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "DS_PROMETHEUS",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Data source",
                    "current": {},
                    "hide": 0,
                },
                {
                    "name": "latency_objective",
                    "type": "custom",
                    "label": "Latency objective (s)",
                    "query": "1.0,2.0,0.5,5.0",
                    "current": {"text": "1.0", "value": "1.0"},
                    "description": "monitoring.latency_objective of the gateways (a bucket bound)",
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(dashboard(), indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
