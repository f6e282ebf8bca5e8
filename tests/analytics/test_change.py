import numpy as np
import pytest

from prsm.performance.analytics import AnomalyDetector, AnomalySettings
from prsm.performance.analytics._change import ChangeRecord
from prsm.performance.errors import ConfigError


def _noise(n: int, seed: int = 31) -> np.ndarray:
    return 100 + np.random.default_rng(seed).normal(0, 1, n)


def _records(rec: ChangeRecord, x: np.ndarray) -> list[int]:
    return [i for i, v in enumerate(x.tolist()) if rec.update(i, v)]


def test_a_level_shift_sets_a_record_and_noise_does_not() -> None:
    x = _noise(5000)
    assert _records(ChangeRecord(3000, 1.3, 1.0, 0.01, begin=150, start=1150), x) == []
    y = x.copy()
    y[4000:] += 2
    found = _records(ChangeRecord(3000, 1.3, 1.0, 0.01, begin=150, start=1150), y)
    assert found and 4000 <= found[0] <= 4010


def test_the_sums_begin_and_records_start_where_told() -> None:
    # a rising series: every point's CUSUM is the largest so far
    x = np.arange(400, dtype=np.float64) ** 2
    assert _records(ChangeRecord(100, 1.0, 0.0, 0.01, begin=50, start=300), x)[0] == 300
    # before `begin` the sums do not move: a shift there leaves no trace once it is undone
    rec = ChangeRecord(1000, 1.0, 0.0, 0.5, begin=200, start=0)
    assert _records(rec, np.r_[np.zeros(100), np.full(50, 9.0), np.zeros(50)]) == []


def test_restart_forgets_the_sums() -> None:
    y = _noise(4000)
    y[3000:] += 3
    kept = ChangeRecord(3000, 1.0, 1.0, 0.01, begin=150, start=1150)
    restarted = ChangeRecord(3000, 1.0, 1.0, 0.01, begin=150, start=1150)
    assert _records(kept, y[:3005]) == _records(restarted, y[:3005]) != []
    restarted.restart()
    tail = [(i, v) for i, v in enumerate(y[3005:3010].tolist(), 3005)]
    assert any(kept.update(i, v) for i, v in tail)  # the sum keeps growing: new records
    assert not any(restarted.update(i, v) for i, v in tail)  # from zero: below the record


def test_a_change_record_is_an_alarm_named_level_shift_that_starts_a_hold() -> None:
    y = _noise(5000)
    y[4000:] += 2  # inside the envelope's tolerance below: not out of range
    off = AnomalySettings(spatial_tolerance=10.0, change_window=0)
    on = AnomalySettings(spatial_tolerance=10.0, change_factor=1.3, change_alpha=0.01)
    plain = AnomalyDetector(off).score_series(y)
    det = AnomalyDetector(on)
    scores = [det.update(v) for v in y[:4005].tolist()]
    assert plain[4004] < on.threshold and scores[4004] == on.change_score
    assert det.kind == "level_shift"
    rest = det.score_series(y[4005 : 4005 + on.hold])
    assert np.all(rest == 0)  # the hold
    np.testing.assert_array_equal(np.array(scores[:4000]), plain[:4000])  # no record before


@pytest.mark.parametrize("cut", [900, 1600, 2600])
def test_online_with_change_records(cut: int) -> None:
    rng = np.random.default_rng(5)
    x = _noise(3000, seed=8)
    x[1200:1400] += 2
    settings = AnomalySettings(change_window=1000, change_start=300, change_factor=1.0)
    full = AnomalyDetector(settings).score_series(x)
    y = x.copy()
    y[cut:] = rng.normal(0, 30, 3000 - cut) + rng.uniform(-200, 200)
    np.testing.assert_array_equal(full[:cut], AnomalyDetector(settings).score_series(y)[:cut])


def test_change_settings_are_checked() -> None:
    for name, bad in (
        ("change_window", -1),
        ("change_factor", 0.0),
        ("change_drift", 0.0),
        ("change_alpha", 0.0),
        ("change_start", 0),
        ("change_score", 1.5),
    ):
        with pytest.raises(ConfigError, match=name):
            AnomalySettings(**{name: bad})  # type: ignore[arg-type]


def test_the_default_has_change_records() -> None:
    s = AnomalySettings()
    assert (s.change_window, s.change_factor, s.change_drift, s.change_alpha) == (
        3000,
        1.0,
        1.0,
        0.002,
    )
    assert s.change_score > s.threshold  # a full alarm
