import numpy as np
import pytest

from prsm.performance.analytics import AnomalyDetector, AnomalySettings
from prsm.performance.analytics._spike import SpikeRecord
from prsm.performance.errors import ConfigError


def test_a_record_must_beat_the_window_maximum_by_the_factor() -> None:
    rec = SpikeRecord(window=10, factor=1.5, start=5, measures=2)
    assert [rec.update(i, 1.0, 1.0) for i in range(10)] == [False] * 10
    assert not rec.update(10, 1.4, 0.0)  # under 1.5 x the largest of the last 10
    assert rec.update(11, 0.0, 1.6)  # either measure may set a record
    assert not rec.update(12, 2.0, 2.0)  # 1.6 is now the second measure's largest
    for i in range(13, 22):
        assert not rec.update(i, 0.1, 0.1)
    # index 12's 2.0 leaves the window at 22; 11's 1.6 is already out: the largest is 0.1
    assert rec.update(22, 0.2, 0.0)


def test_no_record_before_start() -> None:
    rec = SpikeRecord(window=100, factor=1.0, start=50, measures=1)
    assert not any(rec.update(i, float(i)) for i in range(50))  # rising, but too early
    assert rec.update(50, 50.0)


def test_a_lone_spike_is_a_weak_alarm_that_starts_a_hold() -> None:
    x = 100 + np.random.default_rng(4).normal(0, 1, 3000)
    x[2500] += 8  # inside the envelope's tolerance below: not out of range
    base = AnomalySettings(spatial_tolerance=10.0)
    off = AnomalyDetector(AnomalySettings(spatial_tolerance=10.0, spike_window=0))
    plain = off.score_series(x)
    on = AnomalyDetector(base).score_series(x)
    assert plain[2500] < base.spike_score  # the likelihood alone does not alarm
    assert on[2500] == base.spike_score
    assert on[2500] < base.threshold  # weak: not an anomaly at the default threshold
    assert np.all(on[2501 : 2501 + base.hold] == 0)  # but it starts a hold
    assert not np.any(on[:2500] == base.spike_score)  # noise sets no record first


def test_spike_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="spike_window"):
        AnomalySettings(spike_window=-1)
    with pytest.raises(ConfigError, match="spike_factor"):
        AnomalySettings(spike_factor=0)
    with pytest.raises(ConfigError, match="spike_score"):
        AnomalySettings(spike_score=1.5)
