"""Forecasting on synthetic series whose seasonality, trend and steps are known."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from prsm.performance.errors import ConfigError
from prsm.performance.scaling import (
    ExponentialSmoothing,
    HoltWinters,
    LinearTrend,
    LoadPredictor,
    LoadSeries,
    PredictorSettings,
    SeasonalNaive,
    fit_predictor,
)

STEP = 300.0
DAY = 288  # 5-minute steps in a day


def seasonal(days: int, *, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    t = np.arange(days * DAY)
    base = 20.0 + 15.0 * np.sin(2 * np.pi * t / DAY) + 5.0 * np.sin(4 * np.pi * t / DAY)
    rng = np.random.default_rng(seed)
    return np.maximum(base + noise * rng.standard_normal(len(t)), 0.0)


def series(values: np.ndarray, step: float = STEP) -> LoadSeries:
    return LoadSeries(0.0, step, values.astype(np.float64))


def test_seasonal_naive_repeats_the_last_season() -> None:
    y = seasonal(3)
    model = SeasonalNaive(DAY).fit(y)
    np.testing.assert_allclose(model.forecast(model.filter(y), DAY), y[-DAY:])


def test_models_move_their_state_incrementally() -> None:
    y = seasonal(5, noise=1.0)
    for spec in (
        SeasonalNaive(DAY, seasons=2),
        HoltWinters(DAY),
        LinearTrend(12),
        ExponentialSmoothing(),
    ):
        m = spec.fit(y[: 4 * DAY])
        whole = m.forecast(m.filter(y), 10)
        stepwise = m.forecast(m.update(m.filter(y[: 4 * DAY]), y[4 * DAY :]), 10)
        np.testing.assert_allclose(stepwise, whole, rtol=1e-9, err_msg=spec.name)


def test_holt_winters_learns_a_noisy_seasonal_shape() -> None:
    y = seasonal(8, noise=2.0, seed=1)
    m = HoltWinters(DAY).fit(y[: 7 * DAY])
    state = m.filter(y[: 7 * DAY])
    truth = seasonal(8)[7 * DAY :]
    err = np.abs(m.forecast(state, DAY) - truth).mean()
    assert err < 2.5  # the noise alone has a mean absolute size of 1.6
    assert err < np.abs(truth.mean() - truth).mean() / 3  # far better than the mean


def test_linear_trend_extends_a_line() -> None:
    y = 3.0 + 0.5 * np.arange(50)
    m = LinearTrend(10).fit(y)
    np.testing.assert_allclose(m.forecast(m.filter(y), 3), [28.0, 28.5, 29.0])


def test_exponential_smoothing_follows_a_step() -> None:
    y = np.concatenate((np.full(100, 5.0), np.full(100, 40.0)))
    m = ExponentialSmoothing().fit(y)
    assert m.forecast(m.filter(y), 1)[0] == pytest.approx(40.0, abs=0.5)


def test_the_backtest_picks_a_seasonal_model_for_seasonal_load() -> None:
    settings = PredictorSettings(combine="best", horizon=4 * 3600.0)  # where seasons matter
    fitted = fit_predictor(series(seasonal(10, noise=1.0)), settings)
    assert fitted.model.startswith(("seasonal_naive", "holt_winters"))
    # and it beats the non-seasonal models by far in its own backtest
    e = fitted.errors
    assert min(v for k, v in e.items() if "seasonal" in k or "holt" in k) < 0.5 * e["exp_smoothing"]


def test_the_backtest_picks_the_trend_for_a_ramp() -> None:
    y = 10.0 + 0.2 * np.arange(10 * DAY)
    fitted = fit_predictor(series(y), PredictorSettings(combine="best"))
    assert fitted.model.startswith(("linear_trend", "holt_winters"))
    fc = fitted.predict(series(y), 900.0)
    np.testing.assert_allclose(fc.point, 10.0 + 0.2 * np.arange(10 * DAY, 10 * DAY + 3), rtol=0.02)


def test_a_level_step_is_followed() -> None:
    y = np.concatenate((np.full(6 * DAY, 10.0), np.full(4 * DAY, 30.0)))
    fc = fit_predictor(series(y)).predict(series(y))
    assert fc.point[0] == pytest.approx(30.0, rel=0.1)


def test_the_upper_quantile_covers_about_nine_in_ten() -> None:
    y = seasonal(14, noise=3.0, seed=2)
    p = PredictorSettings(quantile=0.9)
    fitted = fit_predictor(series(y[: 10 * DAY]), p)
    states = fitted.filter(y[: 10 * DAY])
    hits = []
    for i in range(10 * DAY, 14 * DAY - 3):
        fc = fitted.forecast(states, 3, 0.0)
        hits.append(y[i] <= fc.upper[0])
        assert np.all(fc.upper >= fc.point)
        states = fitted.update(states, y[i : i + 1])
    assert 0.82 <= np.mean(hits) <= 0.97


def test_load_predictor_predicts_from_finer_history_and_refits_on_schedule() -> None:
    minutes = np.repeat(seasonal(5) / 5.0, 5)  # per-minute counts
    history = LoadSeries(0.0, 60.0, minutes)
    predictor = LoadPredictor(PredictorSettings(refit_interval=3600.0))
    fc = predictor.predict(history, prediction_horizon=dt.timedelta(minutes=15))
    assert len(fc.point) == 3 and fc.step == STEP and fc.start == history.end
    assert fc.rate()[0] == pytest.approx(fc.point[0] / STEP)
    first = predictor.fitted
    predictor.predict(history.window(0, history.end - 600))  # older: no refit
    assert predictor.fitted is first
    longer = LoadSeries(0.0, 60.0, np.concatenate((minutes, minutes[:120])))
    predictor.predict(longer)  # two hours later: refitted
    assert predictor.fitted is not first


def test_too_short_a_history_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="too few"):
        fit_predictor(series(np.ones(10)))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"quantile": 1.0}, "quantile"),
        ({"combine": "vote"}, "combine"),
        ({"step": 7.0}, "step"),  # a day is not a whole number of 7 s steps
        ({"validation": 0.9}, "validation"),
    ],
)
def test_bad_predictor_settings_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        PredictorSettings(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


def test_load_series_resamples_and_windows() -> None:
    s = LoadSeries(0.0, 60.0, np.arange(12, dtype=np.float64))
    assert s.resample(300.0).values.tolist() == [10.0, 35.0]
    assert s.window(120.0, 300.0).values.tolist() == [2.0, 3.0, 4.0]
    with pytest.raises(ConfigError):
        s.resample(90.0)
