"""``prsm-perf bench NAME [ARGS...]``: run ``python -m benchmarks.NAME`` from a checkout."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def _benchmarks_root() -> Path | None:
    for start in (Path.cwd(), Path(__file__).resolve()):
        for parent in (start, *start.parents):
            if (parent / "benchmarks" / "_harness.py").is_file():
                return parent
    return None


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "bench",
        help="run a benchmark (ours against its peer) and write benchmarks/results/NAME.json",
        description="Run benchmarks/NAME.py from the project checkout; extra arguments "
        "(--quick, --plot, sizes) are passed on. Peers come from the 'bench' extra.",
    )
    p.add_argument("name", help="benchmark name, e.g. routing")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the benchmark")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = _benchmarks_root()
    if root is None:
        print(
            "prsm-perf bench: the benchmarks/ folder ships with the source checkout; "
            "run this from inside it",
            file=sys.stderr,
        )
        return 2
    script = root / "benchmarks" / f"{args.name}.py"
    if not script.is_file():
        names = sorted(p.stem for p in (root / "benchmarks").glob("[!_]*.py"))
        print(
            f"prsm-perf bench: unknown benchmark {args.name!r}; available: {', '.join(names)}",
            file=sys.stderr,
        )
        return 2
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return subprocess.call(
        [sys.executable, "-m", f"benchmarks.{args.name}", *args.args], cwd=root, env=env
    )
