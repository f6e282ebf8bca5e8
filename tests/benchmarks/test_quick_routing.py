"""The routing benchmark runs (``--quick``: it checks that it runs, not its figures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .quick import need, run_quick


@pytest.mark.slow
def test_routing_benchmark_quick(tmp_path: Path) -> None:
    need("litellm", extra="bench")
    data = run_quick("routing", tmp_path, env={"LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    impls = {row["implementation"] for row in data["rows"]}
    assert {"ours (intelligent)", "litellm simple-shuffle", "ours handle()"} <= impls
    assert {row["operation"] for row in data["rows"]} >= {"route", "route (churn)", "handle"}
    assert set(data["ratio_vs_peer"]) == {"route@10", "route_churn@10", "handle@10"}
    assert data["churn"]["events_per_round"] > 0
    assert all(row["median_us"] > 0 for row in data["rows"])
