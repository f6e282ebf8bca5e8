"""``prsm-perf optimize FILE``: solve an allocation file, print it, write JSON and a PNG."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from ..errors import DependencyMissingError, InfeasibleAllocationError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "optimize",
        help="allocate workloads to resource types (MILP): units, placement, cost",
        description="Decide how many units of each resource type to use and where each "
        "workload runs, under capacity, latency-SLO and budget constraints, maximising "
        "-cost + 2 x performance. FILE (YAML or JSON) lists resources and workloads; see "
        "the README's 'Resource allocation' section for its format.",
    )
    p.add_argument("file", type=Path, help="allocation file (.yaml, .yml or .json)")
    p.add_argument(
        "--json", type=Path, default=None, help="JSON output (default: STEM.allocation.json)"
    )
    p.add_argument("--png", type=Path, default=None, help="chart (default: STEM.allocation.png)")
    p.add_argument("--no-png", action="store_true", help="do not draw the chart")
    p.add_argument("--budget", type=float, default=None, help="$/hour limit (overrides the file)")
    p.add_argument("--time-limit", type=float, default=None, help="seconds (default 10)")
    p.add_argument("--gap", type=float, default=None, help="target relative gap (default 0.01)")
    p.add_argument("--solver", choices=["highs", "cp-sat", "scipy", "none"], default=None)
    p.add_argument("--rows", type=int, default=30, help="workloads shown in the table")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument(
        "--from-history",
        default=None,
        metavar="SINCE",
        help="take each workload's requests/s from the monitoring history over this window "
        "(e.g. 24h, 7d): the --quantile of its per-minute rate, matched by workload name to "
        "model.request_rate{model}",
    )
    p.add_argument("--quantile", type=float, default=0.95, help="with --from-history (0.95)")
    p.add_argument("--config", default=None, help="config file (where the history is kept)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import build
    from ._io import load_allocation_file
    from ._optimizer import ResourceOptimizer
    from ._settings import OptimizerSettings

    spec = load_allocation_file(args.file)
    if args.from_history is not None:
        spec = dataclasses.replace(spec, workloads=tuple(_from_history(args, spec.workloads)))
    overrides: dict[str, Any] = dict(spec.settings)
    for flag, key in (("time_limit", "time_limit"), ("gap", "target_gap"), ("solver", "solver")):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    settings = build(OptimizerSettings, overrides, "settings")
    budget = args.budget if args.budget is not None else spec.budget_per_hour
    if budget is not None:
        settings = dataclasses.replace(settings, budget_per_hour=budget)
    stem = args.file.name.split(".")[0]
    json_path = args.json or Path(f"{stem}.allocation.json")
    png_path = args.png or Path(f"{stem}.allocation.png")

    from rich.console import Console

    err = Console(stderr=True)

    async def solve() -> Any:
        async with ResourceOptimizer(settings) as opt:
            if args.quiet:
                return await opt.optimize_allocation(spec.workloads, spec.resources)
            with err.status("solving…") as status:

                def show(e: Any) -> None:
                    inc = f"{e.objective:,.2f}" if math.isfinite(e.objective) else "none yet"
                    gap = f"{e.gap:.2%}" if math.isfinite(e.gap) else "—"
                    status.update(
                        f"[bold]{e.phase}[/] · incumbent {inc} · bound {e.bound:,.2f} · "
                        f"gap {gap} · {e.elapsed:.1f}s"
                    )

                return await opt.optimize_allocation(
                    spec.workloads, spec.resources, on_progress=show
                )

    try:
        allocation = asyncio.run(solve())
    except InfeasibleAllocationError as exc:
        out = {
            "input": str(args.file),
            "feasible": False,
            "exact": exc.exact,
            "conflicts": [_conflict(c) for c in exc.conflicts],
        }
        json_path.write_text(json.dumps(out, indent=2) + "\n")
        err.print(f"[red]infeasible[/]: wrote the conflicts to {json_path}")
        raise
    _print(allocation, args.rows)
    out = {"input": str(args.file), "feasible": True, "allocation": allocation.to_dict()}
    json_path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {json_path}")
    if not args.no_png:
        from ._plot import plot_allocation

        kinds = {w.name: w.kind for w in spec.workloads}
        try:
            print(f"wrote {plot_allocation(allocation, kinds, png_path)}")
        except DependencyMissingError as exc:
            err.print(f"chart skipped: {exc}")
    return 0


def _from_history(args: argparse.Namespace, workloads: Any) -> list[Any]:
    """The file's workloads at the rates the history measured (notes on stderr)."""
    import time

    from rich.console import Console

    from ..config import load_config
    from ..monitoring._admin import parse_time
    from ..monitoring._monitor import build_store
    from ._history import measured_rates, with_measured_rates

    now = time.time()
    since = parse_time(args.from_history, "from-history", now)
    store = build_store(load_config(args.config).history)
    try:
        rates = measured_rates(store, since=since, until=now, quantile=args.quantile)
    finally:
        store.close()
    out, notes = with_measured_rates(workloads, rates)
    err = Console(stderr=True)
    for note in notes:
        err.print(f"history: {note}")
    return out


def _print(allocation: Any, rows: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    res = Table(title="resource types in use")
    for col in ("resource", "units", "available", "$/hour", "cpu used", "memory used", "GPUs used"):
        res.add_column(col, justify="right" if col != "resource" else "left")
    for r in sorted(allocation.resources, key=lambda r: -r.cost_per_hour):
        res.add_row(
            r.resource,
            str(r.units),
            str(r.available),
            f"{r.cost_per_hour:,.2f}",
            _frac(r.cpu_used, r.cpu_capacity),
            _frac(r.memory_gb_used, r.memory_gb_capacity),
            _frac(r.gpus_used, r.gpus_capacity),
        )
    console.print(res)
    shown = min(rows, len(allocation.workloads))
    work = Table(title=f"placement ({shown} of {len(allocation.workloads)} workloads)")
    for col in ("workload", "replicas on", "latency ms", "SLO headroom"):
        work.add_column(col)
    for w in allocation.workloads[:rows]:
        where = ", ".join(f"{k}× {t}" for t, k in sorted(w.replicas.items(), key=lambda kv: -kv[1]))
        work.add_row(w.workload, where, f"{w.latency_ms:,.0f}", f"{w.headroom:.0%}")
    console.print(work)
    console.print(
        f"cost {allocation.cost_per_hour:,.2f} $/h · performance {allocation.performance:,.2f} · "
        f"objective {allocation.objective:,.2f} (bound {allocation.bound:,.2f}, gap "
        f"{allocation.gap:.2%}) · {allocation.status} by {allocation.solver} in "
        f"{allocation.seconds:.2f}s"
    )


def _conflict(c: object) -> Any:
    to_dict = getattr(c, "to_dict", None)
    return to_dict() if callable(to_dict) else str(c)


def _frac(used: float, cap: float) -> str:
    return f"{used:,.0f}/{cap:,.0f}" if cap else "—"
