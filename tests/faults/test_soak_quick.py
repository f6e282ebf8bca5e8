"""The soak benchmark runs (``--quick``: 30 s; checks that it runs and samples, not flatness)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks.quick import ROOT, need_file, run_quick

pytestmark = [pytest.mark.integration, pytest.mark.slow]
#: the benchmark's servers run this checkout's sources, whatever is installed
SOURCES = {"PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"}
TRACE = Path(__file__).resolve().parents[3] / "shared/data/traces/azure_llm_2023_conv.csv"


def test_soak_benchmark_quick(tmp_path: Path) -> None:
    need_file(TRACE)
    data = run_quick("soak", tmp_path, timeout=300, env=SOURCES)
    series = {r["series"]: r for r in data["rows"]}
    assert set(series) == {
        "requests",
        "gateway_rss",
        "gateway_fixed_fds",
        "tree_rss",
        "tree_fixed_fds",
        "longest_idle_node_connection",
        "longest_idle_redis_connection",
        "gateway_own_fds",
        "pooled_connections",
        "tree_own_fds",
        "gateway_fds",
        "tree_fds",
        "load_generator_connections",
        "client_connections_not_in_the_pool",
    }
    assert series["requests"]["requests"] > 0 and series["gateway_rss"]["start"] > 0
    assert data["samples_taken"] >= 20  # one a second
    # judged: memory, the fixed descriptors and the pooled connections' floor; the client
    # connections are compared with the load generator's pool instead (they are its own)
    judged = ("gateway_rss", "gateway_fixed_fds", "tree_rss", "tree_fixed_fds")
    assert set(data["meets_goal"]) == {f"{s}_flat" for s in judged} | {
        "idle_node_connections_closed",
        "idle_redis_connections_closed",
        "client_connections_follow_the_pool",
    }
    assert series["load_generator_connections"]["end"] > 0
    # the gateway talks to its nodes and Redis over pooled connections, counted apart
    assert series["pooled_connections"]["end"] > 0
    own, fixed = series["gateway_own_fds"], series["gateway_fixed_fds"]
    assert 0 < fixed["start"] < own["start"]
    # how long each pooled connection sat unused, from the kernel's TCP info
    idle = series["longest_idle_node_connection"]
    assert idle["most"] > 0 and idle["limit"] == 8.0
