"""Balancer settings validation and the shared routing math (load, score, signal age)."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest

from prsm.performance.errors import ConfigError
from prsm.performance.routing._entry import NodeEntry
from prsm.performance.routing._node import NodeMetrics, NodeSpec
from prsm.performance.routing._scoring import (
    entry_load,
    intelligent_score,
    make_key,
    node_load,
    signal_next_change,
    signal_state,
    signal_weight,
    wrr_schedule,
)
from prsm.performance.routing._settings import ROUTING_STRATEGIES, BalancerSettings
from prsm.performance.routing._tracker import PerformanceTracker


def test_defaults_are_the_posts() -> None:
    s = BalancerSettings()
    assert (s.strategy, s.performance_weight, s.load_weight) == ("intelligent", 0.6, 0.4)
    assert (s.cpu_weight, s.memory_weight, s.queue_weight) == (0.4, 0.3, 0.3)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"strategy": "fastest"}, "strategy"),
        ({"performance_weight": 0.7}, "performance_weight"),
        ({"cpu_weight": 0.5}, "cpu_weight"),
        ({"ewma_alpha": 0.0}, "ewma_alpha"),
        ({"latency_scale": 0.0}, "latency_scale"),
        ({"latency_explore": 1.5}, "latency_explore"),
        ({"max_cached_groups": 0}, "max_cached_groups"),
        ({"signal_ttl": 0.0}, "signal_ttl"),
        ({"signal_decay": -1.0}, "signal_decay"),
        ({"poll_timeout": math.inf}, "poll_timeout"),
        ({"poll_concurrency": 0}, "poll_concurrency"),
        ({"poll_max_backoff": -2}, "poll_max_backoff"),
        ({"poll_recheck": 0}, "poll_recheck"),
    ],
)
def test_bad_settings_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        BalancerSettings(**changes)  # type: ignore[arg-type]
    assert info.value.field == field


def test_unknown_strategy_lists_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as info:
        BalancerSettings(strategy="fastest")
    for name in ROUTING_STRATEGIES:
        assert name in str(info.value)


def test_load_and_score_follow_the_post() -> None:
    s = BalancerSettings()
    load = node_load(0.5, 0.2, 0.5, settings=s)
    assert load == pytest.approx(0.4 * 0.5 + 0.3 * 0.2 + 0.3 * 0.5)
    assert intelligent_score(0.9, load, s) == pytest.approx(0.9 * 0.6 + (1 - load) * 0.4)


def test_signal_weight_steps_down_then_goes_stale() -> None:
    s = BalancerSettings(signal_ttl=5.0, signal_decay=10.0)
    at = [0.0, 4.999, 5.0, 7.5, 10.0, 12.5, 14.999, 15.0, 1e9]
    assert [signal_weight(0.0, t, s) for t in at] == pytest.approx(
        [1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.2, 0.0, 0.0]
    )
    assert signal_weight(None, 0.0, s) == 0.0
    # each change happens exactly at the instant the timer names
    t, seen = 0.0, list[float]()
    while (t := signal_next_change(0.0, t, s)) != math.inf:
        seen += [t, signal_weight(0.0, t, s)]
    assert seen == pytest.approx([5.0, 0.8, 7.5, 0.6, 10.0, 0.4, 12.5, 0.2, 15.0, 0.0])
    assert signal_next_change(None, 0.0, s) == math.inf
    abrupt = BalancerSettings(signal_ttl=2.0, signal_decay=0.0)
    assert [signal_weight(1.0, t, abrupt) for t in (2.9, 3.0)] == [1.0, 0.0]
    assert [signal_state(w, True) for w in (1.0, 0.4, 0.0)] == ["fresh", "aging", "stale"]
    assert signal_state(0.0, False) == "none"


def _entry(in_flight: int = 0, **spec: object) -> NodeEntry:
    e = NodeEntry(NodeSpec("n", **spec))  # type: ignore[arg-type]
    e.in_flight = in_flight
    return e


def test_entry_load_blends_fresh_readings_with_what_we_see() -> None:
    s = BalancerSettings(signal_ttl=5.0, signal_decay=10.0)
    e = _entry(in_flight=2, max_concurrency=4, queue_size=4)  # busy 0.5, capacity 8
    # never reported: cpu and memory are what we see (busy), queue is our in flight only
    assert entry_load(e, 0.0, s) == pytest.approx(0.4 * 0.5 + 0.3 * 0.5 + 0.3 * 2 / 8)
    e.metrics, e.reported_at = NodeMetrics(cpu=1.0, memory=0.0, queue_depth=6), 0.0
    fresh = 0.4 * 1.0 + 0.3 * 0.0 + 0.3 * 1.0  # queue (6 + 2) / 8
    assert entry_load(e, 1.0, s) == pytest.approx(fresh)
    w = 0.6  # at 7.5 s
    blended = 0.4 * (w + (1 - w) * 0.5) + 0.3 * (1 - w) * 0.5 + 0.3 * (w * 6 + 2) / 8
    assert entry_load(e, 7.5, s) == pytest.approx(blended)
    assert entry_load(e, 20.0, s) == pytest.approx(0.4 * 0.5 + 0.3 * 0.5 + 0.3 * 2 / 8)
    # a reading without memory: memory stays what we see
    e.metrics = NodeMetrics(cpu=0.0)
    assert entry_load(e, 1.0, s) == pytest.approx(0.3 * 0.5 + 0.3 * 2 / 8)


@pytest.mark.parametrize("in_flight", [0, 3, 9])
@pytest.mark.parametrize(
    "metrics",
    [None, NodeMetrics(cpu=0.7, memory=0.2, queue_depth=3), NodeMetrics(cpu=0.1), NodeMetrics()],
)
def test_intelligent_key_is_the_score_of_the_load_exactly(
    in_flight: int, metrics: NodeMetrics | None
) -> None:
    """The balancer's ``intelligent`` key (one function, inline) is bit for bit the score of
    the performance and the load as the public functions compute them, at every age of a
    reading (fresh, fading, stale) and with learned outcomes."""
    s = BalancerSettings(signal_ttl=5.0, signal_decay=10.0)
    tracker = PerformanceTracker(s)
    key = make_key("intelligent", s, tracker)
    e = _entry(in_flight=in_flight, max_concurrency=4, queue_size=4)
    if metrics is not None:
        e.metrics, e.reported_at = metrics, 1.0
    for step, now in enumerate([0.0, 2.0, 6.5, 9.0, 13.3, 16.0, 30.0]):
        if step:
            tracker.record("n", 0.05 * step, step % 3 != 0, now)
        perf = tracker.stats("n").performance(s.latency_scale)
        assert key(e, now) == intelligent_score(perf, entry_load(e, now, s), s)


def test_weighted_schedule_gives_each_its_share_spread_out() -> None:
    sched = wrr_schedule([1.0, 2.0, 3.0])
    assert Counter(sched) == {0: 1, 1: 2, 2: 3}
    assert all(a != b for a, b in itertools.pairwise(sched))  # interleaved
    big = wrr_schedule([1.0] * 10 + [1000.0])
    assert len(big) <= 16 * 11 + 11  # bounded: each member rounds up to at least one slot
    assert Counter(big)[10] > Counter(big)[0]
