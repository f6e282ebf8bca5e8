"""The node registry (membership, states, metrics, capability index) and the tracker."""

from __future__ import annotations

import pytest

from prsm.performance.errors import ConfigError
from prsm.performance.routing._node import NodeMetrics, NodeSpec, NodeState
from prsm.performance.routing._registry import NodeRegistry
from prsm.performance.routing._settings import BalancerSettings
from prsm.performance.routing._tracker import NodeStats, PerformanceTracker, observe, observe_slow


def _reg() -> NodeRegistry:
    return NodeRegistry(
        [
            NodeSpec("a", models={"m"}, capabilities={"chat", "tools"}, max_context=4096),
            NodeSpec("b", models={"m"}, capabilities={"chat"}, max_context=32768),
            NodeSpec("c", models={"e"}, capabilities={"embeddings"}),
        ]
    )


def test_add_update_drain_remove_and_listeners() -> None:
    reg = _reg()
    seen: list[tuple[str, str]] = []
    reg.add_listener(lambda n, c: seen.append((n, c)))
    reg.add(NodeSpec("d", models={"m"}))
    with pytest.raises(ConfigError, match="already registered"):
        reg.add(NodeSpec("d"))
    reg.update(NodeSpec("d", models={"m", "x"}))
    assert reg.get("d").models == {"m", "x"}
    reg.drain("d")
    assert reg.state("d") is NodeState.DRAINING
    reg.activate("d")
    assert reg.state("d") is NodeState.ACTIVE
    reg.remove("d")
    assert "d" not in reg
    with pytest.raises(KeyError, match="unknown node 'd'"):
        reg.get("d")
    assert seen == [
        ("d", "added"),
        ("d", "updated"),
        ("d", "state"),
        ("d", "state"),
        ("d", "removed"),
    ]


def test_candidates_by_capability_model_and_context() -> None:
    reg = _reg()
    ids = lambda key: [e.id for e in reg.candidates(key)]  # noqa: E731
    assert ids(reg.group_key("m", frozenset(), 0)) == ["a", "b"]
    assert ids(reg.group_key("m", frozenset({"tools"}), 0)) == ["a"]
    assert ids(reg.group_key("m", frozenset(), 8000)) == ["b"]
    assert ids(reg.group_key("m", frozenset(), 100_000)) == []
    assert ids(reg.group_key("e", frozenset(), 100_000)) == ["c"]  # unlimited context
    assert ids(reg.group_key("nope", frozenset(), 0)) == []
    assert ids(reg.group_key("", frozenset({"chat"}), 0)) == ["a", "b"]


def test_candidate_cache_is_dropped_on_membership_change() -> None:
    reg = _reg()
    key = reg.group_key("m", frozenset({"tools"}), 0)
    assert [e.id for e in reg.candidates(key)] == ["a"]
    reg.add(NodeSpec("t", models={"m"}, capabilities={"tools"}))
    assert [e.id for e in reg.candidates(key)] == ["a", "t"]
    reg.update(NodeSpec("t", models={"m"}))
    assert [e.id for e in reg.candidates(key)] == ["a"]


def test_metrics_and_in_flight_accounting() -> None:
    reg = _reg()
    reg.update_metrics("a", NodeMetrics(cpu=0.5, memory=0.25, queue_depth=2, in_flight=99))
    reg.acquire("a")
    reg.acquire("a")
    reg.release("a")
    m = reg.metrics("a")
    assert (m.cpu, m.memory, m.queue_depth, m.in_flight) == (0.5, 0.25, 2, 1)
    reg.release("a")
    reg.release("a")  # never below zero
    assert reg.metrics("a").in_flight == 0
    reg.acquire("gone")  # a removed node's late release/acquire is ignored
    assert reg.models() == ["e", "m"]


def test_observe_is_an_ewma_and_failures_do_not_move_latency() -> None:
    st = observe(NodeStats(), 0.2, True, 1.0, 0.5)
    assert (st.latency, st.success_rate, st.requests) == (0.2, 1.0, 1)
    st = observe(st, 0.4, True, 2.0, 0.5)
    assert st.latency == pytest.approx(0.3)
    st = observe(st, 0.001, False, 3.0, 0.5)
    assert st.latency == pytest.approx(0.3)
    assert st.success_rate == pytest.approx(0.5)
    assert (st.requests, st.failures) == (3, 1)


def test_tracker_performance_in_unit_range_and_listener() -> None:
    changed: list[str] = []
    t = PerformanceTracker(BalancerSettings(latency_scale=1.0), on_change=changed.append)
    assert t.performance("x") == 1.0
    t.record("x", 1.0, True, 0.0)
    assert t.performance("x") == pytest.approx(0.5)
    for _ in range(50):
        t.record("x", 0.0, False, 0.0)
    assert 0.0 <= t.performance("x") < 0.01
    assert changed.count("x") == 51
    with pytest.raises(ValueError, match="latency"):
        t.record("x", -1.0, True, 0.0)


def test_the_deviation_and_a_lost_race_teach_the_latency_estimate() -> None:
    first = observe(NodeStats(), 0.1, True, 1.0, 0.2)
    assert (first.latency, first.deviation) == (0.1, 0.05)  # RFC 6298's first sample
    second = observe(first, 0.2, True, 2.0, 0.2)
    assert second.latency == pytest.approx(0.12) and second.deviation == pytest.approx(0.06)
    slow = observe_slow(second, 1.12, 3.0, 0.2)  # a hedge beat it after 1.12 s
    assert slow.latency == pytest.approx(0.32) and slow.success_rate == second.success_rate
    assert slow.requests == second.requests and slow.last_seen == 3.0
    assert observe_slow(second, 0.05, 3.0, 0.2) is second  # it lost faster than it answers
    fresh = observe_slow(NodeStats(), 0.3, 1.0, 0.2)
    assert (fresh.latency, fresh.deviation) == (0.3, 0.15)
