"""The current findings as the dashboard shows them: ``GET /admin/analytics`` shaped for a panel.

:func:`shape_findings` turns the analysis (``analyze_performance_trends``'s dict) into what the
findings panel draws: the bottleneck sentence, the capacity line (which bound binds, the
ceiling, the knee), the insights by severity, the recommendations with their figures in one
line, and the anomalies per chart series. The page does the same in ``static/findings.js``
(``PRSMFindings.shape``); a test runs both on the same analyses and compares them, so the
terminal (``prsm-perf top``) and the page write the same words and figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ._fmt import to_fixed

#: the most insights and recommendations the panel lists (the API orders them, most urgent first)
MAX_ROWS = 8
#: how far back the page and ``prsm-perf top`` analyse (the charts' window, so every anomaly
#: found can be marked on them), and how often they ask again (an analysis of 15 minutes of
#: one-second history costs the gateway about a second of CPU, in a worker thread)
FINDINGS_SINCE = "15m"
FINDINGS_EVERY_S = 60
BOUNDS = {"cpu": "the gateway's CPU", "coherency": "coherency", "contention": "contention"}


def figure(v: Any) -> str:
    """A value in a recommendation's impact line, as the page writes it."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        if not math.isfinite(v):
            return "–"
        if float(v).is_integer():
            return str(int(v))
        a = abs(v)
        return to_fixed(v, 0 if a >= 100 else 2 if a >= 1 else 4)
    return str(v)


def impact_line(rec: Mapping[str, Any]) -> str:
    """``key=value`` for a recommendation's plain figures (nested ones left out)."""
    impact = rec.get("potential_savings") or rec.get("estimated_impact") or {}
    return ", ".join(
        f"{k}={figure(v)}" for k, v in impact.items() if not isinstance(v, (dict, list))
    )


def capacity_line(capacity: Mapping[str, Any]) -> str | None:
    """Which bound binds the busiest node's capacity model, its ceiling and knee."""
    nodes = capacity.get("nodes") or {}
    best = None
    for node_id in sorted(nodes):
        info = nodes[node_id]
        model = info.get("model")
        if not (model and model.get("binding") and _num(model.get("ceiling"))):
            continue
        if best is None or (info.get("rate_now") or 0) > (best[1].get("rate_now") or 0):
            best = (node_id, info)
    if best is None:
        return None
    node_id, info = best
    model = info["model"]
    line = (
        f"node {node_id}: bound by {BOUNDS.get(model['binding'], model['binding'])} at "
        f"{to_fixed(model['ceiling'], 0)} req/s"
    )
    if _num(model.get("knee_concurrency")):
        line += f", knee at {to_fixed(model['knee_concurrency'], 0)} in flight"
    cpu = model.get("cpu")
    if cpu and _num(cpu.get("cpu_seconds_per_request")):
        line += f", {to_fixed(cpu['cpu_seconds_per_request'] * 1e6, 1)} µs CPU a request"
    return line


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def shape_findings(analysis: Mapping[str, Any]) -> dict[str, Any]:
    """The findings panel's data from ``/admin/analytics``'s JSON."""
    bottleneck = analysis.get("bottleneck") or {}
    anomalies = analysis.get("anomalies") or {}
    insights = analysis.get("insights") or []
    recs = analysis.get("recommendations") or []
    return {
        "sentence": bottleneck.get("sentence") or "No findings yet.",
        "saturates_first": bottleneck.get("saturates_first"),
        "capacity": capacity_line(analysis.get("capacity") or {}),
        "insights": [
            {"severity": i["severity"], "type": i["type"], "message": i["message"]}
            for i in insights[:MAX_ROWS]
        ],
        "recommendations": [
            {
                "priority": r["priority"],
                "action": r["action"],
                "reason": r.get("reason") or "",
                "impact": impact_line(r),
            }
            for r in recs[:MAX_ROWS]
        ],
        "anomalies": {
            key: [[a["ts"], a["value"]] for a in items] for key, items in sorted(anomalies.items())
        },
        "counts": {
            "insights": len(insights),
            "recommendations": len(recs),
            "anomalies": sum(len(v) for v in anomalies.values()),
        },
    }
