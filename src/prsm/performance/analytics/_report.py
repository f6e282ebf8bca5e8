"""The analysis as an HTML report with PNG charts (matplotlib): each watched series that
moved, with its anomalies marked and its Theil–Sen trend drawn, and the bottleneck (where
requests' time goes, how close each node is to its fitted capacity)."""

from __future__ import annotations

import datetime as _dt
import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._fleet import GATEWAY_CPU

if TYPE_CHECKING:
    from ._analytics import SeriesData

MAX_CHARTS = 12


def _stamp(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _slug(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key).strip("_")


def write_report(result: Mapping[str, Any], series: Mapping[str, SeriesData], out: Path) -> Path:
    """Write ``out/index.html`` and its charts; returns the HTML file's path."""
    import matplotlib

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    flagged = {i["metric"] for i in result["insights"]}
    chosen = [
        sd
        for sd in series.values()
        if sd.key in result["anomalies"]
        or (sd.trend and sd.trend["direction"] != "no trend")
        or sd.metric in flagged
    ][:MAX_CHARTS]
    charts = [_series_chart(sd, out) for sd in chosen]
    bottleneck_png = _bottleneck_chart(result, out)
    page = _html(result, charts, bottleneck_png)
    path = out / "index.html"
    path.write_text(page)
    return path


def _series_chart(sd: SeriesData, out: Path) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 2.8))
    hours = (sd.ts - sd.ts[0]) / 3600
    ax.plot(hours, sd.values, lw=0.8, color="C0", label=sd.key)
    if sd.anomaly_at:
        idx = np.asarray(sd.anomaly_at)
        ax.scatter(hours[idx], sd.values[idx], color="red", s=18, zorder=3, label="anomaly")
    t = sd.trend
    if t is not None and t["direction"] != "no trend":
        line = t["intercept"] + t["slope_per_s"] * sd.ts
        ax.plot(hours, line, "--", color="C1", label=f"trend: {t['direction']}")
    ax.set_xlabel(f"hours since {_stamp(float(sd.ts[0]))}")
    ax.legend(loc="upper left", fontsize=7)
    ax.set_title(sd.key, fontsize=9)
    fig.tight_layout()
    name = f"{_slug(sd.key)}.png"
    fig.savefig(out / name, dpi=90)
    plt.close(fig)
    return name


def _bottleneck_chart(result: Mapping[str, Any], out: Path) -> str | None:
    import matplotlib.pyplot as plt

    stages = result["bottleneck"].get("stages") or {}
    nodes = {n: v for n, v in result["capacity"].get("nodes", {}).items() if v.get("utilization")}
    gateway = result["capacity"].get("gateway")
    if gateway is not None and gateway["rate_now"] > 0:
        nodes[GATEWAY_CPU] = gateway  # its rate over its CPU ceiling
    if not stages and not nodes:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    if stages:
        names = list(stages)
        shares = [stages[n]["share"] for n in names]
        colors = ["red" if n == result["bottleneck"]["limiting_stage"] else "C0" for n in names]
        axes[0].barh(names, shares, color=colors)
        axes[0].invert_yaxis()
        axes[0].set_xlabel("share of request time")
        axes[0].set_title("where requests' time goes", fontsize=9)
    if nodes:
        names = list(nodes)
        used = [nodes[n]["utilization"] for n in names]
        first = result["bottleneck"].get("saturates_first")
        axes[1].barh(names, used, color=["red" if n == first else "C2" for n in names])
        axes[1].axvline(1.0, color="k", lw=0.8)
        axes[1].set_xlabel("throughput / fitted capacity (gateway: / CPU ceiling)")
        axes[1].set_title("what saturates first", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "bottleneck.png", dpi=90)
    plt.close(fig)
    return "bottleneck.png"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items() if not isinstance(v, Mapping))
    return str(value)


def _table(rows: list[list[Any]], head: list[str]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{th}</tr>{body}</table>"


def _html(result: Mapping[str, Any], charts: list[str], bottleneck: str | None) -> str:
    period = result["period"]
    insights = [[i["severity"], i["type"], i["message"]] for i in result["insights"]]
    recs = [
        [r["priority"], r["action"], r["reason"],
         r.get("potential_savings") or r.get("estimated_impact") or {}]
        for r in result["recommendations"]
    ]  # fmt: skip
    trends = [
        [key, t["direction"], t["slope_per_s"], t["p_value"], t["change"]]
        for key, t in result["trends"].items()
    ]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>PRSM analysis</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 6px;text-align:left}</style></head><body>",
        f"<h1>Performance analysis</h1><p>{_stamp(period['since'])} → "
        f"{_stamp(period['until'])}</p>",
        f"<h2>Bottleneck</h2><p>{html.escape(result['bottleneck']['sentence'])}</p>",
    ]
    if bottleneck:
        parts.append(f"<img src='{bottleneck}' alt='bottleneck'>")
    parts.append("<h2>Insights</h2>" + _table(insights, ["severity", "type", "what"]))
    parts.append(
        "<h2>Recommendations</h2>"
        + _table(recs, ["priority", "action", "reason", "impact / savings"])
    )
    parts.append(
        "<h2>Trends</h2>" + _table(trends, ["series", "direction", "slope /s", "p", "change"])
    )
    parts.append("<h2>Charts</h2>")
    parts.extend(f"<img src='{c}' alt='{html.escape(c)}'><br>" for c in charts)
    capacity = json.dumps(result["capacity"], indent=1, default=str)
    parts.append(f"<h2>Capacity model</h2><pre>{html.escape(capacity)}</pre></body></html>")
    return "\n".join(parts)
