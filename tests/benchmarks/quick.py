"""Running a benchmark in its ``--quick`` form from a test (it checks that it runs, not its
figures), and what it needs installed: under ``CI=true`` a missing peer is a failure."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
QQP_DEV = ROOT.parent / "shared" / "data" / "qqp_pairs_dev.jsonl"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(*modules: str, extra: str) -> None:
    """Skip (fail under CI) unless every module is importable."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            if IN_CI:
                pytest.fail(f"{module} (the {extra!r} extra) is not installed; CI=true needs it")
            pytest.skip(f"{module} is not installed: pip install -e '.[{extra}]'")


def need_file(path: Path) -> None:
    """Skip (fail under CI) unless ``path`` exists (the shared data sets)."""
    if not path.is_file():
        if IN_CI:
            pytest.fail(f"{path} is missing, and CI=true needs it (see ../shared/data/README.md)")
        pytest.skip(f"{path} is missing (see ../shared/data/README.md)")


def run_quick(
    name: str, out: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> dict[str, Any]:
    """Run ``python -m benchmarks.NAME --quick --out OUT ARGS`` and return its JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--quick", "--out", str(out), *args],
        cwd=ROOT,
        # this checkout's sources first (a worktree's, not the installed copy's)
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join((str(ROOT / "src"), str(ROOT))),
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data: dict[str, Any] = json.loads((out / f"{name}.quick.json").read_text())
    assert data["name"] == name and data["quick"] is True
    return data
