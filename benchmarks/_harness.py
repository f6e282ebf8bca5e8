"""What every benchmark shares: arguments, timing helpers, the table, the JSON, the chart.

A benchmark builds a :class:`Report`, adds rows (dicts with the same keys), sets the ratio
against its peer, the goal and whether it is met, then calls :meth:`Report.finish`, which
prints the table, writes ``benchmarks/results/NAME.json`` (and ``NAME.png`` with ``--plot``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def parser(name: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs (CI)")
    p.add_argument("--plot", action="store_true", help="also draw the table as a PNG chart")
    p.add_argument("--rounds", type=int, default=None, help="rounds to take the median of")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for NAME.json / NAME.png")
    return p


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by linear interpolation."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def time_per_call(fn: Callable[[], Any], *, number: int, rounds: int) -> list[float]:
    """Seconds per call of ``fn``: one figure per round of ``number`` calls."""
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        out.append((time.perf_counter() - t0) / number)
    return out


async def atime_per_call(fn: Callable[[], Any], *, number: int, rounds: int) -> list[float]:
    """Seconds per awaited call of the coroutine function ``fn``, one figure per round."""
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(number):
            await fn()
        out.append((time.perf_counter() - t0) / number)
    return out


@dataclass
class Report:
    """One benchmark's results."""

    name: str
    goal: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    ratio_vs_peer: float | dict[str, float] | None = None
    meets_goal: bool | dict[str, bool] | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    quick: bool = False

    def add(self, **row: Any) -> None:
        self.rows.append(row)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "when": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "quick": self.quick,
            "rows": self.rows,
            "ratio_vs_peer": self.ratio_vs_peer,
            "goal": self.goal,
            "meets_goal": self.meets_goal,
            "notes": self.notes,
            **self.extra,
        }

    def print_table(self) -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"benchmark: {self.name}" + (" (quick)" if self.quick else ""))
        keys: list[str] = []
        for row in self.rows:
            keys.extend(k for k in row if k not in keys)
        for k in keys:
            table.add_column(k)
        for row in self.rows:
            table.add_row(*(_fmt(row.get(k)) for k in keys))
        console = Console(width=160)
        console.print(table)
        console.print(f"ratio vs peer: {self.ratio_vs_peer}")
        console.print(f"goal: {self.goal}")
        console.print(f"meets goal: {self.meets_goal}")
        for n in self.notes:
            console.print(f"note: {n}")

    def finish(
        self,
        args: argparse.Namespace,
        plot: Callable[[Report, Path], None] | None = None,
    ) -> Path:
        """Print, write JSON (``NAME.quick.json`` for quick runs), and plot if asked."""
        self.quick = bool(getattr(args, "quick", False))
        self.print_table()
        out: Path = args.out
        out.mkdir(parents=True, exist_ok=True)
        stem = f"{self.name}.quick" if self.quick else self.name
        path = out / f"{stem}.json"
        path.write_text(json.dumps(self.as_json(), indent=2, default=str) + "\n")
        print(f"wrote {path}")
        if getattr(args, "plot", False) and plot is not None:
            png = out / f"{stem}.png"
            plot(self, png)
            print(f"wrote {png}")
        return path


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    return "" if v is None else str(v)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
