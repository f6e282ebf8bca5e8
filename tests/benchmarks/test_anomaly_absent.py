"""The rank-calibrated variants measured in the anomaly benchmark (expected event absent, and
drift): online, muted at start-up, and each sees the event it was built for."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from benchmarks._anomaly_absent import absent_scores, drift_scores, rank_score, startup_counts


def _spiky(n: int, period: int, seed: int) -> np.ndarray:
    x = 10 + np.random.default_rng(seed).normal(size=n)
    x[period::period] += 20  # a regular spike
    return x


def test_rank_score_maps_the_tail_to_the_log_scale() -> None:
    assert rank_score(1.0, 1e-3) == 0.0
    assert rank_score(1e-3, 1e-3) == pytest.approx(1.0)
    assert rank_score(1e-6, 1e-3) == 1.0
    assert rank_score(10**-1.5, 1e-3) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="p_floor"):
        rank_score(0.5, 1.0)


def test_absent_fires_once_when_a_regular_spike_stops_and_is_online() -> None:
    kw: dict[str, Any] = {
        "quantile": 0.99,
        "factor": 2.0,
        "min_gaps": 5,
        "p_floor": 0.01,
        "mute": 750,
    }
    x = _spiky(4000, 100, 1)
    a = absent_scores(x, **kw)
    assert not a.any()  # spikes keep coming: no record absence
    y = x.copy()
    y[3000:] = 10 + np.random.default_rng(2).normal(size=1000)  # the spikes stop
    b = absent_scores(y, **kw)
    np.testing.assert_array_equal(a[:3000], b[:3000])
    hits = np.flatnonzero(b)
    assert len(hits) == 1 and 3100 <= hits[0] <= 3250 and b[hits[0]] > 0.5
    with pytest.raises(ValueError, match="factor"):
        absent_scores(x, **{**kw, "factor": 0.5})


def test_absent_is_muted_before_mute() -> None:
    y = _spiky(2000, 100, 3)
    y[750:] = 10.0  # the spikes stop early: the record absence (at 900) falls before the mute
    kw: dict[str, Any] = {"quantile": 0.99, "factor": 2.0, "min_gaps": 5, "p_floor": 0.01}
    assert np.flatnonzero(absent_scores(y, **kw, mute=0)).tolist() == [900]
    assert not absent_scores(y, **kw, mute=1000).any()


def test_drift_fires_on_a_slow_drift_once_and_not_on_noise() -> None:
    kw: dict[str, Any] = {
        "fast": 0.01,
        "slow": 0.001,
        "p_floor": 1e-4,
        "rearm": 0.2,
        "mute": 750,
        "lag": 200,
    }
    rng = np.random.default_rng(4)
    x = 10 + rng.normal(size=6000)
    y = x.copy()
    y[5000:] += np.linspace(0, 8, 1000)  # a slow drift before a failure
    a, b = drift_scores(x, **kw, margin=0.5), drift_scores(y, **kw, margin=0.5)
    np.testing.assert_array_equal(a[:5000], b[:5000])
    assert not a[:750].any() and not b[:750].any()
    hits = np.flatnonzero(b[5000:])
    assert len(hits) == 1 and b[5000 + hits[0]] > 0.5
    assert not a.any()
    assert drift_scores(x, **{**kw, "margin": 0.0}).any()  # without a margin, noise sets records


def test_startup_counts() -> None:
    sig = {"a": np.zeros(2000), "b": np.zeros(2000)}
    sig["a"][760] = 1.0
    sig["b"][1000] = 1.0
    assert startup_counts(sig, 750, 0.5) == {"files_first_100": 1, "files_per_later_100": 0.2}
