import math
from datetime import UTC, datetime

import numpy as np
import pytest

from prsm.performance.analytics import AnomalyDetector, AnomalySettings
from prsm.performance.analytics._entropy import RelativeEntropy
from prsm.performance.errors import ConfigError


def _noise(n: int, seed: int = 1) -> np.ndarray:
    return 100 + np.random.default_rng(seed).normal(0, 1, n)


def _first_named(x: np.ndarray, settings: AnomalySettings) -> tuple[int, str]:
    """The first point the detector calls an anomaly, and the kind it names."""
    det = AnomalyDetector(settings)
    for i, v in enumerate(x.tolist()):
        det.update(v)
        if det.kind != "none":
            return i, det.kind
    return -1, "none"


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


def test_hold_suppresses_repeat_alarms_but_not_new_extremes() -> None:
    x = _noise(3000, seed=4)
    x[2000:2030] -= 6  # an incident: alarms once, then held
    x[2050] = x.max() + 500  # a new extreme (beyond 10 spans) during the hold still scores 1
    held = AnomalySettings(spatial_tolerance=10.0, hold=100, quiet=0)
    s = AnomalyDetector(held).score_series(x)
    hits = np.flatnonzero(s[1500:2200] >= held.threshold) + 1500
    assert hits.size and 2000 <= hits[0] <= 2010
    assert set(hits.tolist()) == {hits[0], 2050}
    assert s[2050] == 1.0
    during = np.arange(hits[0] + 1, hits[0] + 101)
    assert np.all(s[during[during != 2050]] == 0)
    free = AnomalySettings(spatial_tolerance=10.0, hold=0, quiet=0)
    s0 = AnomalyDetector(free).score_series(x)
    assert (s0[2000:2200] >= free.threshold).sum() > 2  # without the hold, repeats


def test_sustained_level_shift_is_named() -> None:
    x = _noise(4000, seed=6)
    x[2500:] += 3  # stays inside the range seen so far? no: off by the envelope's tolerance
    first, kind = _first_named(x, AnomalySettings(spatial_tolerance=10.0, quiet=0))
    assert 2500 <= first <= 2540
    assert kind == "level_shift"


@pytest.mark.parametrize(("hold", "quiet"), [(0, 0), (100, 2000), (150, 300)])
def test_online_under_random_futures(hold: int, quiet: int) -> None:
    """The score of point i never depends on points after i (with and without the hold and
    the quiet-period record)."""
    rng = np.random.default_rng(11)
    x = _noise(1500, seed=12)
    ts = 1_700_000_000 + 300 * np.arange(1500)
    settings = AnomalySettings(hold=hold, quiet=quiet)
    full = AnomalyDetector(settings).score_series(x, ts)
    for cut in (400, 900, 1300):
        y = x.copy()
        y[cut:] = rng.normal(0, 30, 1500 - cut) + rng.uniform(-200, 200)
        part = AnomalyDetector(settings).score_series(y, ts)
        np.testing.assert_array_equal(full[:cut], part[:cut])


def test_quiet_period_record_is_a_weak_alarm() -> None:
    x = _noise(6000, seed=5)
    q = 1000
    plain = AnomalyDetector(AnomalySettings(quiet=0)).score_series(x)
    rec = AnomalyDetector(AnomalySettings(quiet=q)).score_series(x)
    diff = np.flatnonzero(plain != rec)
    assert diff.size  # a record happened on 6000 points of noise
    i = int(diff[0])
    assert i >= q and plain[i] < 0.5
    assert rec[i] == pytest.approx(0.5 + 0.01 * plain[i])
    assert plain[i] > plain[i - q + 1 : i].max()  # above every score of the last q points
    assert plain[:i].max() < 0.5 or i - int(np.flatnonzero(plain[:i] >= 0.5)[-1]) > q
    assert rec[i] < AnomalySettings().threshold  # weak: not an anomaly at the default threshold
    hold = AnomalySettings().hold
    assert np.all(rec[i + 1 : i + 1 + hold] == 0)  # and, like any alarm, it starts a hold


def test_hold_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="hold"):
        AnomalySettings(hold=-1)
    with pytest.raises(ConfigError, match="quiet"):
        AnomalySettings(quiet=-1)
    with pytest.raises(ConfigError, match="hold_threshold"):
        AnomalySettings(hold_threshold=0)
    with pytest.raises(ConfigError, match="alpha_shift"):
        AnomalySettings(alpha_shift=2)


def test_relative_entropy_sees_a_change_of_spread() -> None:
    rng = np.random.default_rng(21)
    ent = RelativeEntropy(window=15, reference=500, bins=20)
    same = [ent.update(float(v), 0.0, 100.0) for v in rng.uniform(0, 100, 1000)]
    assert same[:264] == [None] * 264  # nothing until half the reference is filled
    assert ent.ready == 1000 - 264
    assert max(kl for kl in same[300:] if kl is not None) < 1.5
    stuck = [ent.update(50.0, 0.0, 100.0) for _ in range(15)]
    assert (stuck[-1] or 0.0) > 2.5  # 15 values in one bin the reference visits 1/20 of the time
    assert (ent.update(-5.0, 0.0, 100.0) or -1.0) >= 0  # outside the range: the edge bin


def test_a_series_that_stops_varying_is_a_distribution_change() -> None:
    x = np.random.default_rng(22).uniform(0, 100, 5000)
    x[4000:] = 50 + np.random.default_rng(23).normal(0, 0.1, 1000)  # stuck at the mean
    first, kind = _first_named(x, AnomalySettings(quiet=0))
    assert 4000 <= first <= 4030
    assert kind == "distribution"
    off = AnomalySettings(quiet=0, entropy_window=0)
    s_off = AnomalyDetector(off).score_series(x)
    assert s_off[4000:4200].max() < 0.1  # the other surprises do not see it


def test_entropy_term_is_quiet_until_half_a_reference_of_divergences() -> None:
    """Its likelihood's first estimates are made on the zeros before the first divergence;
    muted until half a reference of divergences, it raises no start-up alarm on noise."""
    x = np.random.default_rng(24).uniform(0, 100, 2000)
    on = AnomalySettings(quiet=0)
    s_on = AnomalyDetector(on).score_series(x)
    s_off = AnomalyDetector(AnomalySettings(quiet=0, entropy_window=0)).score_series(x)
    half = on.entropy_reference // 2
    first = on.warmup + on.entropy_window + half - 1  # the first divergence (0-based index)
    start = first + half - 1  # it speaks from its half-reference-th divergence on
    np.testing.assert_array_equal(s_on[:start], s_off[:start])
    assert s_on.max() < on.hold_threshold


def test_entropy_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="entropy_window"):
        AnomalySettings(entropy_window=-1)
    with pytest.raises(ConfigError, match="entropy_bins"):
        AnomalySettings(entropy_bins=0)
    with pytest.raises(ConfigError, match="entropy_reference"):
        AnomalySettings(entropy_reference=0)
    with pytest.raises(ConfigError, match="entropy_scale"):
        AnomalySettings(entropy_scale=0)
