"""The resilience benchmark runs (``--quick``: checks that it runs, not its figures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks.quick import ROOT, run_quick

pytestmark = [pytest.mark.integration, pytest.mark.slow]
#: the benchmark's servers run this checkout's sources, whatever is installed
SOURCES = {"PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"}


def test_resilience_benchmark_quick(tmp_path: Path) -> None:
    data = run_quick("resilience", tmp_path, timeout=300, env=SOURCES)
    phases = [r["phase"] for r in data["rows"] if r["target"] == "prsm"]
    assert phases[:2] == ["healthy", "down"] and phases[-1] == "all"
    assert {"slow", "errors", "truncate", "redis", "disk"} <= set(phases)
    overall = data["rows"][-1]
    assert overall["requests"] > 0 and overall["requests"] == sum(
        overall[k] for k in ("ok", "failed", "lost")
    )
    assert set(data["meets_goal"]) >= {"success_ge_99_9pct", "nothing_lost", "p99_le_2x_healthy"}
