"""The hostile-client benchmark runs (``--quick`` with three fast cases: it checks that it
runs and writes its table, not the figures; ``tests/hostile/`` runs every case)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .quick import need, run_quick


@pytest.mark.slow
@pytest.mark.integration
def test_hostile_benchmark_quick(tmp_path: Path) -> None:
    need("uvicorn", extra="test")
    cases = "smuggling,pipeline_bad_middle,half_closed"
    data = run_quick("hostile", tmp_path, "--cases", cases, "--peers", "uvicorn")
    assert {(r["case"], r["target"]) for r in data["rows"]} == {
        (case, target)
        for case in ("smuggling (CL + TE)", "pipeline, bad request 4th", "half-closed socket")
        for target in ("prsm", "uvicorn")
    }
    assert set(data["meets_goal"]) == {"ours_every_check", "at_least_uvicorn_every_case"}
    assert data["ratio_vs_peer"]["checks"] == 12
