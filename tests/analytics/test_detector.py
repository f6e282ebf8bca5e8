import math
from datetime import UTC, datetime

import numpy as np
import pytest

from prsm.performance.analytics import AnomalyDetector, AnomalySettings
from prsm.performance.errors import ConfigError


def _noise(n: int, seed: int = 1) -> np.ndarray:
    return 100 + np.random.default_rng(seed).normal(0, 1, n)


def test_scores_are_in_unit_interval_and_quiet_on_noise() -> None:
    det = AnomalyDetector()
    scores = det.score_series(_noise(3000))
    assert scores.min() >= 0 and scores.max() <= 1
    assert (scores[1000:] >= det.settings.threshold).mean() < 0.01


def test_spike_and_level_shift_are_flagged_and_named() -> None:
    x = _noise(2000)
    x[1500] += 12  # a spike inside the seen range after a drift? no: above every past value
    det = AnomalyDetector()
    scores = det.score_series(x[:1501])
    assert scores[1500] >= det.settings.threshold and det.kind == "out_of_range"
    y = _noise(2000, seed=2)
    y[1500:] -= 4  # a level shift that stays inside the seen range
    det2 = AnomalyDetector(AnomalySettings(spatial_tolerance=10.0))
    s2 = det2.score_series(y)
    hits = np.flatnonzero(s2 >= det2.settings.threshold)
    assert hits.size and 1500 <= hits[0] <= 1530


def test_online_each_point_judged_on_the_past_only() -> None:
    x = _noise(1200)
    full = AnomalyDetector().score_series(x)
    x2 = x.copy()
    x2[1000:] += 50  # changing the future does not change past scores
    part = AnomalyDetector().score_series(x2)
    np.testing.assert_array_equal(full[:1000], part[:1000])


def test_seasonal_deviation_needs_timestamps() -> None:
    n = 24 * 12 * 20  # 20 days of 5-minute points
    ts = 1_700_000_000 + 300 * np.arange(n)
    hours = (ts // 3600) % 24
    rng = np.random.default_rng(3)
    x = 50 + 20 * (hours >= 12) + rng.normal(0, 1, n)
    x[-200:] = np.where(hours[-200:] >= 12, 50, 70) + rng.normal(0, 1, 200)  # day/night swap
    det = AnomalyDetector()
    s = det.score_series(x, ts)
    assert s[-200:].max() >= det.settings.threshold
    kinds = set()
    det3 = AnomalyDetector()
    for v, t in zip(x.tolist(), ts.tolist(), strict=True):
        det3.update(v, datetime.fromtimestamp(t, UTC))
        kinds.add(det3.kind)
    assert "seasonal" in kinds


def test_bad_input_is_named() -> None:
    with pytest.raises(ConfigError, match="value"):
        AnomalyDetector().update(math.nan)
    with pytest.raises(ConfigError, match="alpha"):
        AnomalySettings(alpha=0)
    with pytest.raises(ConfigError, match="warmup"):
        AnomalySettings(warmup=0)
    with pytest.raises(ConfigError, match="timestamps"):
        AnomalyDetector().score_series([1.0, 2.0], [1.0])
