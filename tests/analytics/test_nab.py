import math

import numpy as np
import pytest

from prsm.performance.analytics import (
    PROFILES,
    NabProfile,
    NabSeries,
    score_corpus,
    score_held_out_groups,
)
from prsm.performance.analytics._nab import probation_length, scaled_sigmoid, sweep_scores
from prsm.performance.errors import ConfigError

STD = PROFILES["standard"]


def _series(n: int, windows: tuple[tuple[int, int], ...], name: str = "s") -> NabSeries:
    ts = np.arange(n).astype("datetime64[s]")
    return NabSeries(name, ts, np.zeros(n), windows)


def test_scaled_sigmoid_matches_nab_reference_points() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.5) == -1.0


def test_probation_is_fifteen_percent_capped_at_750() -> None:
    assert probation_length(1000) == 150
    assert probation_length(100_000) == 750


def test_sweep_scores_earliest_detection_in_window_earns_full_weight() -> None:
    sw = sweep_scores(400, [(200, 209)], STD)
    assert sw[200] == pytest.approx(1.0)  # left edge, normalised by max TP
    assert sw[209] == pytest.approx(scaled_sigmoid(-0.1) / scaled_sigmoid(-1.0))
    assert sw[199] == pytest.approx(-0.11)  # before any window: -1 x fp weight
    # after the window: sigmoid of the distance relative to width - 1
    assert sw[215] == pytest.approx(scaled_sigmoid(6 / 9) * 0.11)


def test_one_detection_at_window_start_scores_perfect() -> None:
    s = _series(1000, ((500, 519),))
    scores = np.zeros(1000)
    scores[500] = 1.0
    r = score_corpus([s], {"s": scores}, STD)
    assert r.score == pytest.approx(100.0)
    assert (r.tp, r.fp, r.fn, r.threshold) == (1, 0, 0, 1.0)


def test_only_the_best_detection_in_a_window_counts_and_every_fp_costs() -> None:
    s = _series(1000, ((500, 519),))
    scores = np.zeros(1000)
    scores[[505, 510, 515]] = 0.9  # three in the window: counted once
    scores[[300, 301]] = 0.9  # two false positives before the window: -0.11 each
    r = score_corpus([s], {"s": scores}, STD, threshold=0.9)
    tp_value = scaled_sigmoid(-(519 - 505 + 1) / 20) / scaled_sigmoid(-1.0)
    raw = tp_value - 0.22
    assert r.raw == pytest.approx(raw)
    assert r.score == pytest.approx(100 * (raw + 1) / 2)
    # the optimiser may not do better than the only non-trivial threshold
    assert score_corpus([s], {"s": scores}, STD).raw == pytest.approx(raw)


def test_missed_window_costs_fn_weight_and_null_detector_scores_zero() -> None:
    s = _series(1000, ((500, 519), (800, 809)))
    r = score_corpus([s], {"s": np.full(1000, 0.5)}, PROFILES["reward_low_FN_rate"])
    assert r.score == pytest.approx(0.0) and r.fn == 2 and r.threshold == 1.1


def test_threshold_choice_is_one_over_the_corpus() -> None:
    a, b = _series(1000, ((500, 519),), "a"), _series(1000, ((600, 619),), "b")
    sa, sb = np.zeros(1000), np.zeros(1000)
    sa[500] = 0.8
    sb[600] = 0.6
    sb[700:710] = 0.7  # ten FPs at 0.7 would have to be taken to reach b's window
    r = score_corpus([a, b], {"a": sa, "b": sb}, STD)
    assert r.threshold == pytest.approx(0.6)  # 2 TP - 10 x 0.11 x ~0.99 > 1 TP - 1
    assert r.tp == 2 and r.fp == 10


def test_detections_in_probation_are_not_scored() -> None:
    s = _series(1000, ((500, 519),))
    scores = np.zeros(1000)
    scores[:150] = 1.0
    scores[500] = 1.0
    assert score_corpus([s], {"s": scores}, PROFILES["reward_low_FP_rate"]).fp == 0


def test_bad_input_is_named() -> None:
    s = _series(10, ())
    with pytest.raises(ConfigError, match="scores"):
        score_corpus([s], {"s": np.zeros(9)}, STD)
    with pytest.raises(ConfigError, match="no scores"):
        score_corpus([s], {}, STD)
    with pytest.raises(ConfigError, match="windows"):
        _series(10, ((5, 12),))
    with pytest.raises(ConfigError, match="fp_weight"):
        NabProfile("x", 1.0, 1.0, math.nan)


def test_a_corpus_without_windows_scores_nan_but_keeps_its_raw_cost() -> None:
    s = _series(1000, ())
    scores = np.zeros(1000)
    scores[500] = 1.0
    r = score_corpus([s], {"s": scores}, STD, threshold=0.5)
    assert math.isnan(r.score) and r.raw == pytest.approx(-0.11) and r.fp == 1


def _category(name: str) -> str:
    return name.split("/", maxsplit=1)[0]


def test_held_out_groups_score_each_group_at_the_other_groups_threshold() -> None:
    a = _series(1000, ((500, 519),), name="a/1")
    b = _series(1000, ((500, 519),), name="b/1")
    sa, sb = np.zeros(1000), np.zeros(1000)
    sa[500] = 0.9  # a's window is caught at 0.9
    sb[500], sb[300] = 0.6, 0.95  # b's at 0.6, and b has a louder false positive
    scores = {"a/1": sa, "b/1": sb}
    r = score_held_out_groups([a, b], scores, STD, _category)
    # a is judged at b's best threshold (0.6: its catch and its FP) and b at a's (0.9: only
    # the FP), so b's window is missed although the pooled optimum would catch both.
    thr_b = score_corpus([b], scores, STD).threshold
    thr_a = score_corpus([a], scores, STD).threshold
    ra = score_corpus([a], scores, STD, threshold=thr_b)
    rb = score_corpus([b], scores, STD, threshold=thr_a)
    assert (thr_a, thr_b) == (0.9, 0.6)
    assert r.raw == pytest.approx(ra.raw + rb.raw)
    assert (r.tp, r.fp, r.fn) == (1, 1, 1)
    assert r.score < score_corpus([a, b], scores, STD).score
    assert math.isnan(r.threshold)
    with pytest.raises(ConfigError, match="group"):
        score_held_out_groups([a, b], scores, STD, lambda name: "all")
