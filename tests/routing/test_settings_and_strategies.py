"""Balancer settings validation and the pure strategy functions."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from prsm.performance.errors import ConfigError
from prsm.performance.routing._settings import ROUTING_STRATEGIES, BalancerSettings
from prsm.performance.routing._strategies import (
    Candidate,
    StrategyState,
    choose,
    intelligent_score,
    node_load,
    wrr_schedule,
)


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
    load = node_load(0.5, 0.2, 3, 1, 8, settings=s)
    assert load == pytest.approx(0.4 * 0.5 + 0.3 * 0.2 + 0.3 * 0.5)
    assert node_load(0, 0, 100, 0, 8, settings=s) == pytest.approx(0.3)  # queue capped at 1
    assert intelligent_score(0.9, load, s) == pytest.approx(0.9 * 0.6 + (1 - load) * 0.4)


def _c(node_id: str, **kw: object) -> Candidate:
    return Candidate(node_id, **kw)  # type: ignore[arg-type]


def test_intelligent_picks_the_best_eligible_score() -> None:
    s = BalancerSettings()
    cands = [
        _c("slow", performance=0.2, load=0.0),
        _c("best", performance=1.0, load=0.1, eligible=False),
        _c("good", performance=0.9, load=0.2),
    ]
    i, _ = choose("intelligent", cands, StrategyState(), random.Random(0), s)
    assert i == 2


def test_round_robin_skips_ineligible_and_advances() -> None:
    s = BalancerSettings()
    cands = [_c("a"), _c("b", eligible=False), _c("c")]
    state = StrategyState()
    picks = []
    for _ in range(4):
        i, state = choose("round_robin", cands, state, random.Random(0), s)
        assert i is not None
        picks.append(cands[i].node_id)
    assert picks == ["a", "c", "a", "c"]


def test_weighted_schedule_gives_each_its_share_spread_out() -> None:
    sched = wrr_schedule([1.0, 2.0, 3.0])
    assert Counter(sched) == {0: 1, 1: 2, 2: 3}
    assert all(a != b for a, b in itertools.pairwise(sched))  # interleaved
    big = wrr_schedule([1.0] * 10 + [1000.0])
    assert len(big) <= 16 * 11 + 11  # bounded: each member rounds up to at least one slot
    assert Counter(big)[10] > Counter(big)[0]


def test_power_of_two_prefers_the_less_loaded_of_two() -> None:
    s = BalancerSettings()
    cands = [_c("busy", load=0.9), _c("idle", load=0.1)]
    for seed in range(5):
        i, _ = choose("power_of_two", cands, StrategyState(), random.Random(seed), s)
        assert i == 1


def test_latency_tries_unmeasured_then_fastest() -> None:
    s = BalancerSettings(latency_explore=0.0)
    cands = [_c("slow", latency=0.5), _c("fast", latency=0.1), _c("new", latency=0.0)]
    i, _ = choose("latency", cands, StrategyState(), random.Random(0), s)
    assert i == 2
    i, _ = choose("latency", cands[:2], StrategyState(), random.Random(0), s)
    assert i == 1


@pytest.mark.parametrize("strategy", ROUTING_STRATEGIES)
def test_nothing_eligible_gives_none(strategy: str) -> None:
    cands = [_c("a", eligible=False), _c("b", eligible=False)]
    i, _ = choose(strategy, cands, StrategyState(), random.Random(0), BalancerSettings())
    assert i is None
