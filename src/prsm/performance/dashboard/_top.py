"""``prsm-perf top``: the dashboard's figures in a terminal, for a server without a browser.

It reads the same admin JSON the page does (``/admin/metrics/current``, ``/admin/alerts``,
``/admin/nodes``, ``/admin/scaling``, and every ``FINDINGS_EVERY_S`` ``/admin/analytics``) and
draws it with rich: the bottleneck sentence and the current insights; the request rate,
latency percentiles, errors, cache hits, queue, SLA, cost and tokens; time per stage; cache
tiers; replicas; alerts; one row per node. On a terminal it redraws every interval (rich ``Live``)
until Ctrl-C; otherwise (a pipe, a file) it prints one frame and exits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
from rich.columns import Columns
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..errors import AdminApiError
from ..monitoring._stages import STAGES
from ._findings import FINDINGS_EVERY_S, FINDINGS_SINCE, shape_findings
from ._fmt import to_fixed

#: the admin routes one frame reads
ROUTES = ("/admin/metrics/current", "/admin/alerts", "/admin/nodes", "/admin/scaling")
FINDINGS_ROUTE = "/admin/analytics"


@dataclass(frozen=True, slots=True)
class TopView:
    """What one frame shows: the latest collection, alerts, nodes, the scaler (``None``
    when auto-scaling is off) and the findings (:func:`shape_findings`; ``None``: not asked)."""

    current: dict[str, Any]
    alerts: dict[str, Any]
    nodes: list[dict[str, Any]]
    scaling: dict[str, Any] | None
    findings: dict[str, Any] | None = None


def _error(reply: httpx.Response) -> str:
    try:
        return str(reply.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return reply.text[:200] or f"HTTP {reply.status_code}"


def fetch_top_view(client: httpx.Client) -> TopView:
    """One :class:`TopView` from the gateway ``client`` points at; :class:`AdminApiError` saying
    why not."""
    base = str(client.base_url).rstrip("/")
    replies = {}
    for route in ROUTES:
        try:
            replies[route] = client.get(route)
        except httpx.HTTPError as exc:
            raise AdminApiError(base + route, f"cannot reach it: {exc}") from exc
    for route in ROUTES[:3]:
        reply = replies[route]
        if reply.status_code in (401, 403):
            raise AdminApiError(
                base + route,
                f"{_error(reply)} (pass an admin key with --key-env VAR)",
                status=reply.status_code,
            )
        if reply.status_code != 200:
            raise AdminApiError(base + route, _error(reply), status=reply.status_code)
    scaling = replies["/admin/scaling"]
    return TopView(
        current=replies["/admin/metrics/current"].json(),
        alerts=replies["/admin/alerts"].json(),
        nodes=replies["/admin/nodes"].json()["nodes"],
        scaling=scaling.json()["scaling"] if scaling.status_code == 200 else None,
    )


def fetch_findings(client: httpx.Client) -> dict[str, Any]:
    """The findings panel's data (``/admin/analytics`` over ``FINDINGS_SINCE``); when the
    gateway cannot analyse (no history), a sentence saying why."""
    base = str(client.base_url).rstrip("/")
    try:
        reply = client.get(FINDINGS_ROUTE, params={"since": FINDINGS_SINCE})
    except httpx.HTTPError as exc:
        raise AdminApiError(base + FINDINGS_ROUTE, f"cannot reach it: {exc}") from exc
    if reply.status_code != 200:
        return shape_findings({"bottleneck": {"sentence": f"analytics: {_error(reply)}"}})
    return shape_findings(reply.json())


# --- numbers as the frame writes them
def _ok(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fixed(v: Any, digits: int) -> str:
    return to_fixed(v, digits) if _ok(v) else "–"


def ms(v: Any) -> str:
    if not _ok(v):
        return "–"
    x = v * 1000
    digits = 0 if x >= 100 else 1 if x >= 1 else 3
    return f"{to_fixed(x, digits)} ms"


def pct(v: Any) -> str:
    return f"{to_fixed(v * 100, 1)} %" if _ok(v) else "–"


def money(v: Any) -> str:
    if not _ok(v):
        return "–"
    return f"${v:.4f}" if v >= 0.01 else f"${v:.3g}"


def summary_cells(c: dict[str, Any]) -> dict[str, str]:
    """The headline figures of a collection, as the frame (and the page) writes them."""
    a, b = c["application"], c["business"]
    return {
        "requests": f"{fixed(a['request_rate'], 1)} req/s",
        "latency p50 / p95 / p99": " / ".join(
            ms(a[k]) for k in ("response_time_p50", "response_time_p95", "response_time_p99")
        ),
        "errors": f"{pct(a['error_rate'])} ({a['errors']})",
        "cache hits": pct(a["cache_hit_rate"]),
        "queue / in flight": f"{a['queue_depth']} / {a['in_flight']}",
        "SLA compliance": f"{pct(b['sla_compliance'])} ≤ {b['sla_objective_s']} s",
        "cost / request · per s": f"{money(b['cost_per_request'])} · {money(b['cost_per_s'])}",
        "tokens / s · active users": (
            f"{fixed(b['throughput']['tokens_per_s'], 0)} · {b['active_users']}"
        ),
    }


def _summary(c: dict[str, Any]) -> Table:
    t = Table.grid(padding=(0, 2))
    for _ in range(2):
        t.add_column(style="dim")
        t.add_column(justify="right", style="bold")
    items = list(summary_cells(c).items())
    for i in range(0, len(items), 2):
        pair = items[i : i + 2]
        t.add_row(*(x for item in pair for x in item))
    return t


def _stages(c: dict[str, Any]) -> Table:
    stages = c["application"]["stages"]
    t = Table(title="time per stage (last interval)")
    for col in ("stage", "mean", "p50", "p95"):
        t.add_column(col, justify="left" if col == "stage" else "right")
    for name in STAGES:
        s = stages.get(name)
        if s:
            t.add_row(name, ms(s.get("mean")), ms(s.get("p50")), ms(s.get("p95")))
    return t


def _tiers(c: dict[str, Any]) -> Table:
    t = Table(title="cache hit rate by tier")
    t.add_column("tier")
    t.add_column("hit rate", justify="right")
    for name, value in sorted(c["application"]["cache_hit_rates"].items()):
        t.add_row(name, pct(value))
    return t


def _replicas(view: TopView) -> Table:
    s = view.scaling
    if s is not None:
        t = Table(title=f"replicas (auto-scaling: {s['policy']})")
        for col in ("deployment", "ready", "starting", "draining", "target"):
            t.add_column(col, justify="left" if col == "deployment" else "right")
        if s["steps"]:
            last = s["steps"][-1]
            t.add_row(s["deployment"], *(str(last[k]) for k in
                                         ("ready", "starting", "draining", "target")))  # fmt: skip
        return t
    t = Table(title="nodes per model (auto-scaling off)")
    for col in ("model", "active", "draining"):
        t.add_column(col, justify="left" if col == "model" else "right")
    counts: dict[str, list[int]] = {}
    for n in view.nodes:
        for m in n["models"]:
            k = counts.setdefault(m, [0, 0])
            k[0 if n["state"] == "active" else 1] += 1
    for m, (active, draining) in sorted(counts.items()):
        t.add_row(m, str(active), str(draining))
    return t


def _alerts(alerts: dict[str, Any]) -> Table:
    t = Table(title="alerts")
    for col in ("alert", "state", "severity", "value"):
        t.add_column(col)
    for a in alerts.get("active", []):
        labels = ",".join(
            f"{k}={v}"
            for k, v in (a.get("labels") or {}).items()
            if k not in ("alertname", "severity")  # in their own columns
        )
        style = "bold red" if a["state"] == "firing" else "yellow"
        value = f"{a['value']:.4g}" if _ok(a.get("value")) else "–"
        t.add_row(a["name"] + (f"{{{labels}}}" if labels else ""),
                  Text(a["state"], style=style), a["severity"], value)  # fmt: skip
    if not t.row_count:
        none = "none firing or pending" if alerts.get("rules") or alerts.get("slos") else (
            "no alert rules configured")  # fmt: skip
        t.add_row(none, "", "", "")
    return t


def _nodes(view: TopView) -> Table:
    loads = {n["id"]: n.get("load") or {} for n in view.nodes}
    t = Table(title="nodes", expand=True)
    cols = ("node", "state", "breaker", "load", "score", "in flight", "queue", "cpu", "memory",
            "req/s", "p95", "errors", "$/1k tok")  # fmt: skip
    for col in cols:
        t.add_column(col, justify="left" if col in ("node", "state", "breaker") else "right")
    for node_id, m in sorted(view.current["application"]["nodes"].items()):
        load = loads.get(node_id, {})
        shown = fixed(load.get("load"), 2)
        if load.get("state") not in (None, "fresh"):
            shown += f" ({load['state']})"
        breaker = m.get("breaker") or "?"
        style = "green" if breaker == "closed" else "yellow" if breaker == "half_open" else "red"
        t.add_row(
            node_id, m["state"], Text(breaker, style=style), shown, fixed(m["score"], 3),
            str(m["in_flight"]), str(m["queue_depth"]), pct(m["cpu"]), pct(m["memory"]),
            fixed(m["request_rate"], 1), ms(m["latency_p95"]), pct(m["error_rate"]),
            fixed(m["cost_per_1k_tokens"], 4),
        )  # fmt: skip
    return t


SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "green"}


def _findings(f: dict[str, Any]) -> Group:
    lines: list[RenderableType] = [Text.assemble(("Bottleneck: ", "bold"), f["sentence"])]
    if f["capacity"]:
        lines.append(Text(f["capacity"], style="dim"))
    if f["insights"]:
        t = Table(title=f"insights (last {FINDINGS_SINCE})", expand=True)
        for col in ("severity", "insight", "what"):
            t.add_column(col)
        for i in f["insights"]:
            t.add_row(Text(i["severity"], style=SEVERITY_STYLE.get(i["severity"], "")),
                      i["type"], i["message"])  # fmt: skip
        lines.append(t)
    if f["recommendations"]:
        t = Table(title="recommendations", expand=True)
        for col in ("priority", "action", "figures"):
            t.add_column(col)
        for r in f["recommendations"]:
            t.add_row(r["priority"], r["action"], r["impact"])
        lines.append(t)
    return Group(*lines)


def render_top(view: TopView, url: str = "") -> RenderableType:
    """One frame of ``prsm-perf top``."""
    c = view.current
    stamp = time.strftime("%H:%M:%S", time.localtime(c["timestamp"]))
    every = c.get("interval")
    head = Text.assemble(
        ("PRSM gateway ", "bold"), url, f"  collected {stamp}",
        f", every {every:.1f} s" if _ok(every) else "",
    )  # fmt: skip
    panels = Columns([_stages(c), _tiers(c), _replicas(view), _alerts(view.alerts)])
    parts: list[RenderableType] = [head, _summary(c)]
    if view.findings is not None:
        parts.append(_findings(view.findings))
    return Group(*parts, panels, _nodes(view))


def run_top(
    client: httpx.Client,
    console: Console,
    *,
    interval: float | None = None,
    once: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Draw frames from ``client``'s gateway on ``console``: one when ``once`` or the console
    is not a terminal, else live every ``interval`` (default: the monitor's) until Ctrl-C."""
    url = str(client.base_url).rstrip("/")
    findings = fetch_findings(client)
    view = replace(fetch_top_view(client), findings=findings)
    if once or not console.is_terminal:
        console.print(render_top(view, url))
        return 0
    from rich.live import Live

    try:
        with Live(render_top(view, url), console=console, auto_refresh=False, screen=False) as live:
            waited = 0.0  # since the findings were fetched (they are analysed less often)
            while True:
                every = max(0.2, float(interval or view.current.get("interval") or 1.0))
                sleep(every)
                waited += every
                try:
                    if waited >= FINDINGS_EVERY_S:
                        findings, waited = fetch_findings(client), 0.0
                    view = replace(fetch_top_view(client), findings=findings)
                    live.update(render_top(view, url), refresh=True)
                except AdminApiError as exc:  # shown in place; the next interval tries again
                    live.update(Group(render_top(view, url), Text(str(exc), style="bold red")),
                                refresh=True)  # fmt: skip
    except KeyboardInterrupt:
        return 0
