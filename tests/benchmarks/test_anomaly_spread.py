"""The spread-shift variant measured in the anomaly benchmark: online, and it sees a change of
spread that leaves the mean alone."""

from __future__ import annotations

import numpy as np
from benchmarks._anomaly_spread import spread_scores


def test_spread_scores_are_online_and_muted_until_the_reference_is_full() -> None:
    x = 10 + np.random.default_rng(5).normal(size=2500)
    a = spread_scores(x, window=25, reference=500, scale=0.5)
    y = x.copy()
    y[2000:] *= 5
    b = spread_scores(y, window=25, reference=500, scale=0.5)
    np.testing.assert_array_equal(a[:2000], b[:2000])
    mute = 150 + 25 + 500 + 100
    assert not a[:mute].any() and a[mute:].any()
    assert a.min() >= 0 and a.max() <= 1


def test_a_series_that_stops_varying_raises_the_spread_shift() -> None:
    rng = np.random.default_rng(6)
    x = 50 + 10 * rng.normal(size=4000)
    x[3000:] = 50 + 0.01 * rng.normal(size=1000)  # the mean stays, the spread collapses
    s = spread_scores(x, window=25, reference=500, scale=0.5)
    assert s[1500:3000].max() < 0.5
    assert s[3000:3100].max() >= 0.5
