"""The error bound: thresholds learned from outcomes keep the served wrong rate under it."""

from __future__ import annotations

import random

from prsm.performance.caching.semantic._bound import (
    BINS,
    NEVER,
    BoundState,
    decide,
    learn_threshold,
    observe,
    upper_bound,
)


def test_upper_bound_shrinks_with_evidence() -> None:
    assert upper_bound(0, 0, 0.9) == 1.0
    assert upper_bound(0, 10, 0.9) > upper_bound(0, 100, 0.9) > 0.0
    assert upper_bound(5, 95, 0.9) > 0.05 > upper_bound(0, 100, 0.9)


def test_threshold_is_the_lowest_score_whose_served_share_is_safe() -> None:
    right, wrong = [0] * BINS, [0] * BINS
    assert learn_threshold(right, wrong, 0.1, confidence=0.9) == NEVER  # nothing known yet
    right[45], wrong[45] = 200, 2  # scores 0.90-0.92: 1 % wrong
    right[30], wrong[30] = 100, 100  # scores 0.60-0.62: half wrong
    t = learn_threshold(right, wrong, 0.1, confidence=0.9)
    assert t == 45 / BINS
    assert learn_threshold(right, wrong, 0.5, confidence=0.9) == 30 / BINS  # a lax bound


def test_cold_start_explores_then_serves_and_a_wrong_entry_gets_stricter() -> None:
    state, rng = BoundState(0.1), random.Random(0)
    assert not decide(state, 1, 0.95, explore_rate=0.0, rng=rng)
    for i in range(40):
        observe(state, 100 + i, 0.95, True, confidence=0.9)
    assert state.threshold <= 0.95
    assert decide(state, 1, 0.95, explore_rate=0.0, rng=rng)
    observe(state, 1, 0.96, False, confidence=0.9)  # entry 1 was wrong at 0.96
    assert not decide(state, 1, 0.95, explore_rate=0.0, rng=rng)
    assert decide(state, 2, 0.95, explore_rate=0.0, rng=rng)
    explored = sum(not decide(state, 2, 0.95, explore_rate=0.2, rng=rng) for _ in range(1000))
    assert 150 < explored < 250
