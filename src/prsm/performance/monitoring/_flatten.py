"""A collection as history samples: which names the history keeps.

Each number of :meth:`PerformanceMonitor.collect_metrics`'s dict becomes one sample named by
its section and key (``system.cpu_usage``, ``application.response_time_p95``,
``business.sla_compliance``); per-node, per-model, per-stage, per-tier and per-GPU values get
a label instead of a longer name (``node.latency_p95{node="a"}``,
``model.request_rate{model="m"}``, ``stage.p95{stage="upstream"}``,
``application.cache_hit_rate{tier="l1"}``, ``system.gpu_utilization{gpu="0"}``). Missing
values (``None``: nothing to measure in that interval) are left out, never written as zero.

The SLO counts the burn-rate rules read are written per interval: ``slo.requests``,
``slo.errors`` (failed) and ``slo.slow`` (answered, but slower than the latency objective),
and per model ``slo.model_requests{model}``, ``slo.model_errors{model}``,
``slo.model_slow{model}``. With a scaler, its last step: ``scaling.ready``,
``scaling.target``, ``scaling.forecast``, ``scaling.forecast_upper``, ``scaling.score``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._store import Labels, Sample

BREAKER_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def flatten_metrics(metrics: Mapping[str, Any], extra: Labels = ()) -> list[Sample]:
    """The samples of one collection (``extra`` labels added to every series)."""
    ts = float(metrics["timestamp"])
    out: list[Sample] = []

    def put(name: str, value: Any, **labels: str) -> None:
        v = _num(value)
        if v is not None:
            key = tuple(sorted({**dict(extra), **labels}.items()))
            out.append(Sample(name, key, ts, v))

    def scalars(prefix: str, section: Mapping[str, Any]) -> None:
        for key, value in section.items():
            put(f"{prefix}.{key}", value)

    system = metrics.get("system", {})
    scalars("system", system)
    for group in ("disk_io", "network_io", "process"):
        for key, value in (system.get(group) or {}).items():
            put(f"system.{group.removesuffix('_io')}_{key}", value)
    for dev in (system.get("gpu") or {}).get("devices", ()):
        gpu = str(dev.get("index"))
        put("system.gpu_device_utilization", dev.get("utilization"), gpu=gpu)
        put("system.gpu_device_memory_usage", dev.get("memory_usage"), gpu=gpu)

    app = metrics.get("application", {})
    scalars("application", app)
    for tier, rate in (app.get("cache_hit_rates") or {}).items():
        put("application.cache_hit_rate_by_tier", rate, tier=tier)
    for stage, summary in (app.get("stages") or {}).items():
        for key in ("p50", "p95", "mean"):
            put(f"stage.{key}", summary.get(key), stage=stage)
    for model, values in (app.get("models") or {}).items():
        for key, value in values.items():
            put(f"model.{key}", value, model=model)
    for node, values in (app.get("nodes") or {}).items():
        for key, value in values.items():
            if key == "breaker":
                put("node.breaker_state", BREAKER_VALUES.get(str(value)), node=node)
            else:
                put(f"node.{key}", value, node=node)

    biz = metrics.get("business", {})
    scalars("business", biz)
    for key, value in (biz.get("throughput") or {}).items():
        put(f"business.{key}", value)
    for model, values in (biz.get("models") or {}).items():
        put("model.cost_per_request", values.get("cost_per_request"), model=model)
        put("model.sla_compliance", values.get("sla_compliance"), model=model)
        requests = values.get("requests") or 0
        errors = values.get("errors") or 0
        put("slo.model_requests", requests, model=model)
        put("slo.model_errors", errors, model=model)
        put("slo.model_slow", (values.get("sla_violations") or 0) - errors, model=model)
    scalars("scaling", metrics.get("scaling") or {})
    requests = app.get("requests") or 0
    errors = app.get("errors") or 0
    put("slo.requests", requests)
    put("slo.errors", errors)
    put("slo.slow", (biz.get("sla_violations") or 0) - errors)
    return out
