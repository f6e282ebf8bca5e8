"""The discord variant measured in the anomaly benchmark: exact distances, online, the fusion."""

from __future__ import annotations

import math

import numpy as np
import pytest
from benchmarks._anomaly_discord import (
    Discord,
    discord_scores,
    fuse,
    startup_alarms,
    windows_only_variant,
)

from prsm.performance.analytics import PROFILES, NabSeries


def _brute(x: np.ndarray, i: int, m: int, lags: int) -> float:
    q = x[i - m + 1 : i + 1]
    best = min(
        float(((q - x[i - lag - m + 1 : i - lag + 1]) ** 2).sum())
        for lag in range(m, min(lags, i - m + 1) + 1)
    )
    return math.sqrt(best / m)


def test_discord_is_the_nearest_neighbour_distance_across_compactions() -> None:
    x = 1000 + 100 * np.random.default_rng(3).normal(size=5000)  # compacts after 4096 points
    m, lags = 8, 50
    d = Discord(m, lags)
    got = [d.update(v) for v in x.tolist()]
    assert got[: 2 * m - 1] == [None] * (2 * m - 1)
    for i in (2 * m - 1, 60, 4095, 4096, 4097, 4999):
        assert got[i] == pytest.approx(_brute(x, i, m, lags), rel=1e-9)


def test_an_unfamiliar_shape_inside_the_range_is_a_discord() -> None:
    t = np.arange(3000)
    x = np.sin(2 * np.pi * t / 50)
    x[2500:2525] = 0.0  # the cycle stops at its mean: no new value, a new shape
    d = Discord(16, 500)
    got = np.array([d.update(v) or 0.0 for v in x.tolist()])
    assert got[100:2500].max() < 1e-6  # a pure cycle repeats exactly
    assert got[2500:2541].max() > 0.3


def test_discord_scores_are_online_and_muted_until_asked() -> None:
    x = np.random.default_rng(4).normal(size=1500)
    a = discord_scores(x, length=16, lags=300, scale=1.0, feed_from=150, mute_until=400)
    y = x.copy()
    y[1000:] += 40
    b = discord_scores(y, length=16, lags=300, scale=1.0, feed_from=150, mute_until=400)
    np.testing.assert_array_equal(a[:1000], b[:1000])
    assert not a[:400].any() and a[400:].any()
    assert a.min() >= 0 and a.max() <= 1


def test_fuse_takes_the_larger_or_the_weighted_sum_and_holds_after_an_alarm() -> None:
    ours = np.array([0.1, 0.2, 0.1, 0.0, 0.3, 0.1])
    disc = np.array([0.0, 0.6, 0.9, 0.9, 0.0, 0.9])
    larger = fuse(ours, disc, weight=None, hold=2, hold_threshold=0.5)
    np.testing.assert_allclose(larger, [0.1, 0.6, 0.1, 0.0, 0.3, 0.9])  # 2, 3 held
    summed = fuse(ours, disc, weight=0.5, hold=0, hold_threshold=0.5)
    np.testing.assert_allclose(summed, [0.1, 0.5, 0.55, 0.45, 0.3, 0.55])


def test_startup_alarms_and_windows_only_the_variant_catches() -> None:
    n = 1300
    early, late = np.zeros(n), np.zeros(n)
    early[310] = 0.9
    late[310], late[720] = 0.9, 0.9
    counts = startup_alarms({"a": early, "b": late}, 0.5)
    assert counts == {"files_300_399": 2, "files_per_later_span": round(1 / 7, 1)}
    s = NabSeries("f", np.arange(n).astype("datetime64[s]"), np.zeros(n), ((300, 320),))
    ours = {"f": np.zeros(n)}
    caught = windows_only_variant([s], ours, {"f": early}, PROFILES["standard"])
    assert caught == [{"window": "f#0", "span": [300, 320], "detected_at": 310}]
