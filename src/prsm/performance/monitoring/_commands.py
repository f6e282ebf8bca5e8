"""``prsm-perf monitoring``: the Prometheus rules file from the config, and history queries.

::

    prsm-perf monitoring rules --config prsm.yaml --out deploy/prometheus/prsm-rules.yml
    prsm-perf monitoring history application.response_time_p95 --since 1h --step 1m
    prsm-perf monitoring history node.latency_p95 --labels node=a --since 7d
"""

from __future__ import annotations

import argparse
import datetime as _dt
import time
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "monitoring",
        help="monitoring: Prometheus rules from the config, metrics history queries",
        description="Monitoring tools: generate the Prometheus rules file of the config's "
        "alerts, or query the metrics history the gateway keeps.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    r = actions.add_parser(
        "rules", help="print (or write) the config's alert rules as a Prometheus rules file"
    )
    r.add_argument("--config", default=None, help="YAML or TOML config file")
    r.add_argument("--out", type=Path, default=None, help="write here instead of stdout")
    r.set_defaults(func=run_rules)
    h = actions.add_parser("history", help="print one metric's history (as the gateway kept it)")
    h.add_argument("metric", nargs="?", default=None, help="a history metric (omit: list them)")
    h.add_argument("--config", default=None, help="config file (for history.path and tiers)")
    h.add_argument("--labels", default="", help="label filters, e.g. node=a,model=m")
    h.add_argument("--since", default="1h", help="how far back (15m, 1h, 7d) or Unix seconds")
    h.add_argument("--until", default=None, help="until when (default: now)")
    h.add_argument("--step", default=None, help="seconds between points (default: the tier's)")
    h.add_argument("--agg", default="avg", help="avg, sum, min, max, last or count")
    h.set_defaults(func=run_history)


def run_rules(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ._promrules import prometheus_rules_yaml

    config = load_config(args.config)
    text = prometheus_rules_yaml(config.alerts, config.monitoring.latency_objective)
    if args.out is None:
        print(text, end="")
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}")
    return 0


def run_history(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..config import load_config
    from ._admin import parse_duration, parse_labels, parse_time
    from ._monitor import build_store

    config = load_config(args.config)
    store = build_store(config.history)
    console = Console()
    try:
        if args.metric is None:
            for name in store.metrics():
                console.print(name)
            return 0
        now = time.time()
        until = parse_time(args.until, "until", now) if args.until else now
        since = parse_time(args.since, "since", until)
        step = parse_duration(args.step, "step") if args.step else None
        found = store.query(
            args.metric, parse_labels(args.labels), since=since, until=until, step=step,
            agg=args.agg, now=now,
        )  # fmt: skip
        if not found:
            console.print(f"no samples of {args.metric} in that range")
            return 1
        for series in found:
            labels = ",".join(f"{k}={v}" for k, v in series.labels.items()) or "(no labels)"
            table = Table(title=f"{args.metric} {{{labels}}} every {series.step:g}s ({args.agg})")
            table.add_column("time (UTC)")
            table.add_column("value", justify="right")
            for ts, value in series.points:
                stamp = _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
                table.add_row(stamp, f"{value:.6g}")
            console.print(table)
        return 0
    finally:
        store.close()
