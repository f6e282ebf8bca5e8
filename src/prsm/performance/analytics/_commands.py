"""``prsm-perf analyze``: the findings over the monitoring history, and an HTML report.

::

    prsm-perf analyze --since 24h --config prsm.yaml --out prsm-analysis/
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "analyze",
        help="analytics: trends, anomalies, bottleneck and recommendations from the history",
        description="Analyse the metrics history the gateway keeps: print the findings and "
        "write an HTML report with charts.",
    )
    p.add_argument("--config", default=None, help="config file (history.path, analytics)")
    p.add_argument("--since", default="24h", help="window to analyse (15m, 24h, 7d)")
    p.add_argument("--out", type=Path, default=Path("prsm-analysis"), help="report folder")
    p.add_argument("--no-report", action="store_true", help="print only")
    p.set_defaults(func=run_analyze)


def run_analyze(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..config import load_config
    from ..monitoring._monitor import build_store
    from ._analytics import PerformanceAnalytics
    from ._report import write_report

    config = load_config(args.config)
    store = build_store(config.history)
    console = Console(width=140)
    try:
        analytics = PerformanceAnalytics(store, config.analytics)
        result = asyncio.run(analytics.analyze_performance_trends(args.since))
    finally:
        store.close()
    console.print(f"[bold]Bottleneck[/bold]: {result['bottleneck']['sentence']}")
    table = Table(title=f"insights over the last {args.since}")
    for col in ("severity", "type", "what"):
        table.add_column(col)
    for ins in result["insights"]:
        table.add_row(ins["severity"], ins["type"], ins["message"])
    console.print(table)
    recs = Table(title="recommendations")
    for col in ("priority", "action", "impact / savings"):
        recs.add_column(col)
    for r in result["recommendations"]:
        impact = r.get("potential_savings") or r.get("estimated_impact") or {}
        shown = {k: v for k, v in impact.items() if not isinstance(v, dict)}
        recs.add_row(
            r["priority"], r["action"], ", ".join(f"{k}={_short(v)}" for k, v in shown.items())
        )
    console.print(recs)
    n_anomalies = sum(len(v) for v in result["anomalies"].values())
    console.print(f"{len(result['trends'])} series analysed, {n_anomalies} anomalies")
    if not args.no_report:
        path = write_report(result, analytics.series, args.out)
        console.print(f"wrote {path}")
    return 0


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
