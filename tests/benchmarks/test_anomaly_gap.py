"""The anomaly benchmark's breakdown of NAB scores: the parts add up to the scores."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from benchmarks._anomaly_gap import head_to_head, losses, more_windows

from prsm.performance.analytics import PROFILES, NabProfile, NabSeries, score_corpus

WINDOWS = ((400, 419), (600, 619), (800, 819))


def _series(name: str) -> NabSeries:
    n = 1000
    return NabSeries(name, np.arange(n).astype("datetime64[s]"), np.zeros(n), WINDOWS)


def _scores(hits: dict[int, float]) -> npt.NDArray[np.float64]:
    a = np.zeros(1000)
    for i, v in hits.items():
        a[i] = v
    return a


CORPUS = [_series("a"), _series("b")]
# ours: window a#0 at its left edge, a#1 at its centre, b#2 late; one false positive
OURS = {"a": _scores({400: 0.9, 610: 0.9, 300: 0.9}), "b": _scores({818: 0.9})}
# theirs: a#0 at the centre, a#2 and b#0 (which ours misses); three false positives
THEIRS = {
    "a": _scores({410: 0.8, 805: 0.8, 200: 0.8, 250: 0.8}),
    "b": _scores({400: 0.8, 950: 0.8}),
}


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
def test_losses_add_up_to_the_score(profile: NabProfile) -> None:
    r = score_corpus(CORPUS, OURS, profile)
    out = losses(CORPUS, OURS, profile)
    assert (out["windows"], out["caught"], out["false_positives"]) == (6, 3, 1)
    assert out["score"] == round(r.score, 2)
    parts = out["lost_late"] + out["lost_missed"] + out["lost_false_positives"]
    assert 100 - parts == pytest.approx(r.score, abs=0.02)
    assert out["lost_late"] > 0  # two of the three catches come after the left edge
    assert out["mean_position"] == pytest.approx((-1.0 - 0.5 - 0.1) / 3, abs=1e-3)


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
def test_head_to_head_parts_add_up_to_the_difference(profile: NabProfile) -> None:
    out = head_to_head(CORPUS, OURS, THEIRS, profile)
    assert (out["both"], out["ours_only"], out["theirs_only"], out["neither"]) == (1, 2, 2, 1)
    assert out["theirs_only_windows"] == ["a#2", "b#0"]
    diff = score_corpus(CORPUS, OURS, profile).score - score_corpus(CORPUS, THEIRS, profile).score
    assert sum(out["points"].values()) == pytest.approx(diff, abs=0.03)
    assert out["points"]["both_caught_timing"] > 0  # ours caught a#0 earlier
    assert out["points"]["false_positives"] > 0  # ours has fewer
    assert out["mean_position_both"][0] < out["mean_position_both"][1]


def test_more_windows_lowers_the_threshold_one_window_at_a_time() -> None:
    profile = PROFILES["standard"]
    # ours plus weaker scores in two missed windows (a#2 0.5, b#0 0.4), each behind 20 false
    # positives at its level, too many for NAB's optimiser to go down there
    scores = {"a": OURS["a"].copy(), "b": OURS["b"].copy()}
    scores["a"][805] = 0.5
    scores["a"][160:180] = 0.5
    scores["b"][405] = 0.4
    scores["b"][160:180] = 0.45
    steps = more_windows(CORPUS, scores, profile, k=3)  # b#1 scores 0: no step catches it
    assert [s["caught"] for s in steps] == [3, 4, 5]
    assert [s["threshold"] for s in steps] == [0.9, 0.5, 0.4]
    assert [s["false_positives"] for s in steps] == [1, 21, 41]
    assert more_windows(CORPUS, scores, profile, k=1)[1:] == steps[1:2]
    assert steps[0]["score"] == round(score_corpus(CORPUS, scores, profile).score, 2)
