"""The gateway benchmark runs (``--quick``: it checks that it runs, not its figures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .quick import run_quick


@pytest.mark.slow
@pytest.mark.integration
def test_gateway_benchmark_quick(tmp_path: Path) -> None:
    data = run_quick("gateway", tmp_path)
    targets = {(row["target"], row["mode"]) for row in data["rows"]}
    assert targets == {(t, m) for t in ("direct", "prsm") for m in ("non-stream", "stream")}
    ours = next(r for r in data["rows"] if r["target"] == "prsm" and r["mode"] == "non-stream")
    assert ours["peak_rps"] > 0 and ours["errors"] == 0
    assert set(data["meets_goal"]) >= {"added_p50_le_1ms", "peak_ge_40pct_direct"}
