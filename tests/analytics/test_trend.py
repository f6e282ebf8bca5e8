import numpy as np
import pytest
from scipy import stats

from prsm.performance.analytics import TrendDetector, TrendSettings
from prsm.performance.errors import ConfigError


def test_plain_form_equals_scipy_theil_sen_and_kendall() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(300) * 60.0
    x = 0.001 * t + rng.normal(0, 3, 300)
    r = TrendDetector().analyze(t, x)
    ref = stats.theilslopes(x, t, 0.95)
    assert r.slope == pytest.approx(ref.slope)
    assert r.slope_low == pytest.approx(ref.low_slope)
    assert r.slope_high == pytest.approx(ref.high_slope)
    # Mann-Kendall with a continuity correction: close to scipy's tau-b test without one
    assert np.log10(r.p_value) == pytest.approx(np.log10(stats.kendalltau(t, x).pvalue), rel=0.02)
    assert r.direction == "increasing" and r.significant
    assert r.change() == pytest.approx(r.slope * (t[-1] - t[0]))


def test_no_trend_on_noise_and_decreasing_trend_found() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(500) * 10.0
    assert TrendDetector().analyze(t, rng.normal(0, 1, 500)).direction == "no trend"
    down = TrendDetector().analyze(t, 100 - 0.002 * t + rng.normal(0, 1, 500))
    assert down.direction == "decreasing" and down.slope_high < 0


def test_daily_cycle_is_not_a_trend_when_seasonality_is_handled() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(0, 1.5 * 86400, 300.0)  # a day and a half: the cycle tilts a plain test
    x = -10 * np.cos(2 * np.pi * t / 86400) + rng.normal(0, 1, len(t))  # low start, high end
    plain = TrendDetector().analyze(t, x)
    seasonal = TrendDetector(TrendSettings(period=86400)).analyze(t, x)
    assert plain.direction != "no trend"
    assert seasonal.direction == "no trend" and seasonal.seasonal


def test_long_windows_are_bucketed() -> None:
    t = np.arange(5000) * 1.0
    r = TrendDetector(TrendSettings(max_points=100)).analyze(t, 2.0 * t)
    assert r.n <= 100 and r.slope == pytest.approx(2.0)


def test_bad_input_is_named() -> None:
    with pytest.raises(ConfigError, match="values"):
        TrendDetector().analyze([1.0, 2.0], [1.0])
    with pytest.raises(ConfigError, match="at least"):
        TrendDetector().analyze([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    with pytest.raises(ConfigError, match="alpha"):
        TrendSettings(alpha=1.5)
    with pytest.raises(ConfigError, match="period"):
        TrendSettings(period=0)
