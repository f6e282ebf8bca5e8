"""``prsm-perf simulate``: replay a trace in virtual time through scaling policies and compare
them (a progress bar, a summary table, and optionally PNG plots and JSON)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: the summary table's columns: (row key, header)
COLUMNS = (
    ("policy", "policy"),
    ("replica_hours", "replica_hours"),
    ("violation_minutes", "violation_min"),
    ("slo_breaches", "breaches"),
    ("p99_wait_s", "p99_wait_s"),
    ("max_wait_s", "max_wait_s"),
    ("mean_replicas", "mean_replicas"),
    ("scaling_actions", "actions"),
)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "simulate",
        help="replay a request trace through autoscaling policies in virtual time",
        description="Replay a trace (any format in ../shared/data/traces/) through the "
        "production scaling policies (hpa, kpa, ray, predictive) and the oracle, in virtual "
        "time: replicas with the trace's service times (or --service-mean for count traces), "
        "--concurrency requests each, --startup seconds to start. Prints replica-hours, "
        "SLO-violation minutes and queueing delays per policy over the report window.",
    )
    p.add_argument("--trace", required=True, help="trace file")
    p.add_argument(
        "--policy",
        action="append",
        default=None,
        help="hpa, kpa, ray, predictive or oracle; repeat or comma-separate (default: all)",
    )
    p.add_argument("--concurrency", type=int, default=1, help="requests one replica serves at once")
    p.add_argument("--startup", type=float, default=120.0, help="replica start-up time, seconds")
    p.add_argument("--slo", type=float, default=30.0, help="queueing-delay SLO, seconds")
    p.add_argument("--min-replicas", type=int, default=1)
    p.add_argument("--max-replicas", type=int, default=20)
    p.add_argument(
        "--start", default=None, help="simulate from (a date in the trace's time, or seconds)"
    )
    p.add_argument("--end", default=None, help="simulate until (date or seconds)")
    p.add_argument(
        "--report-from", default=None, help="report figures from (date or seconds; default --start)"
    )
    p.add_argument("--scale", type=float, default=1.0, help="rate multiplier for count traces")
    p.add_argument(
        "--service-mean", type=float, default=1.0, help="count traces: mean service time, s"
    )
    p.add_argument(
        "--service-cv", type=float, default=0.0, help="count traces: its coefficient of variation"
    )
    p.add_argument("--decode-tps", type=float, default=50.0, help="Azure traces: decode tokens/s")
    p.add_argument(
        "--prefill-tps", type=float, default=5000.0, help="Azure traces: prefill tokens/s"
    )
    p.add_argument(
        "--look-ahead", type=float, default=60.0, help="the oracle's look-ahead past start-up, s"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="POLICY.PARAM=VALUE",
        help="override a policy parameter, e.g. predictive.wait_probability=0.3 or "
        "predictive.predictor.quantile=0.95 or predictive.burst.span=120",
    )
    p.add_argument("--plot", type=Path, default=None, help="write the plots to this PNG")
    p.add_argument("--json", type=Path, default=None, help="write the summary to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _when(trace: Any, value: str | None, default: float) -> float:
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        return float(trace.at(value))


def _params(items: list[str]) -> dict[str, dict[str, Any]]:
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        policy, dot, param = key.partition(".")
        if not sep or not dot or not param:
            raise ConfigError("--set", f"expected POLICY.PARAM=VALUE, got {item!r}")
        out.setdefault(policy, {})[param] = yaml.safe_load(raw)
    return out


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from ._compare import SIM_POLICIES, Scenario, run_policies, summary_rows
    from ._engine import SimulationSettings
    from ._traces import ServiceModel, TokenModel, read_trace

    names: list[str] = []
    for item in args.policy or [",".join(SIM_POLICIES)]:
        names += [n.strip() for n in item.split(",") if n.strip()]
    for n in names:
        if n not in SIM_POLICIES:
            raise ConfigError("--policy", f"unknown policy {n!r}; known: {', '.join(SIM_POLICIES)}")
    trace = read_trace(
        args.trace,
        scale=args.scale,
        service=ServiceModel(args.service_mean, args.service_cv),
        tokens=TokenModel(args.prefill_tps, args.decode_tps),
    )
    start = _when(trace, args.start, 0.0)
    end = _when(trace, args.end, -1.0)
    report = _when(trace, args.report_from, start)
    settings = SimulationSettings(
        concurrency=args.concurrency,
        startup_time=args.startup,
        slo=args.slo,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        initial_replicas=args.min_replicas,
        start=start,
        end=end if end >= 0 else None,
    )
    scenario = Scenario(
        trace, settings, report_start=report, report_end=settings.end, look_ahead=args.look_ahead
    )
    console = Console()
    params = _params(args.set)
    with Progress(
        TextColumn("{task.description:>12}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        console=console,
        disable=args.quiet,
    ) as bar:
        tasks = {n: bar.add_task(n, total=1.0) for n in names}

        def progress(name: str) -> Any:
            def update(done: float, total: float) -> None:
                bar.update(tasks[name], completed=done / total if total else 1.0)

            return update

        results = run_policies(scenario, names, params=params, progress=progress)
        for t in tasks.values():
            bar.update(t, completed=1.0)
    rows = summary_rows(results, scenario)
    table = Table(title=f"{trace.name}: {len(trace)} requests — {trace.description}")
    for key, head in COLUMNS:
        table.add_column(head, justify="left" if key == "policy" else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(str(row[key]) for key, _ in COLUMNS))
    Console(width=max(console.width, 120)).print(table)
    if args.plot is not None:
        from ._plot import plot_comparison

        out = plot_comparison(results, args.plot, start=report, end=settings.end, title=trace.name)
        console.print(f"wrote {out}")
    if args.json is not None:
        doc = {
            "trace": trace.source,
            "settings": {k: getattr(settings, k) for k in settings.__dataclass_fields__},
            "report_from": report,
            "rows": rows,
            "parameters": {n: r.parameters for n, r in results.items()},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        console.print(f"wrote {args.json}")
    return 0
