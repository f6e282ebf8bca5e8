"""``LoadPredictor``: request-rate forecasts chosen or blended per series by a rolling backtest.

:func:`fit_predictor` fits every candidate model on the history minus its last part (the
validation span), then walks through the validation span step by step, forecasting the
horizon from each origin (a rolling-origin backtest: every forecast sees only the past). The
models' mean absolute errors decide the combination: the best model alone, or a blend
weighted by inverse error, whichever erred less. The combination's backtest residuals give,
per horizon step, the ``quantile`` (0.9: provision for the p90 of demand, not the mean) that
is added to the point forecast. The fitted models then filter the whole history (the
parameters stay those the backtest judged).

Everything here is a pure function of the history; :class:`LoadPredictor` keeps the last fit
and refits when ``refit_interval`` has passed (drivers run it off the request path).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError
from ._models import (
    ExponentialSmoothing,
    Fitted,
    HoltWinters,
    LinearTrend,
    Model,
    SeasonalNaive,
    seasonal_period,
)
from ._types import LoadSeries, check_positive

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True, slots=True)
class PredictorSettings:
    """``step``: the forecast step (seconds; the history is summed into it); ``horizon``: how
    far :meth:`LoadPredictor.predict` looks by default (the post's 15 minutes); ``season``:
    the main seasonality (a day); ``quantile``: the upper quantile provided; ``validation``:
    the share of the history backtested (at least ``min_validation`` seconds); ``combine``:
    ``auto`` (best or blend, whichever erred less), ``best`` or ``blend``; ``refit_interval``:
    how old a fit may get before :class:`LoadPredictor` refits; ``max_history``: the longest
    history a fit reads (seconds)."""

    step: float = 300.0
    horizon: float = 900.0
    season: float = 86400.0
    quantile: float = 0.9
    validation: float = 0.25
    min_validation: float = 86400.0
    combine: str = "auto"
    refit_interval: float = 6 * 3600.0
    max_history: float = 21 * 86400.0

    def __post_init__(self) -> None:
        check_positive("step", self.step)
        check_positive("horizon", self.horizon)
        check_positive("refit_interval", self.refit_interval)
        check_positive("min_validation", self.min_validation)
        check_positive("max_history", self.max_history)
        if not 0.5 <= self.quantile < 1.0:
            raise ConfigError("quantile", f"must be in [0.5, 1), got {self.quantile!r}")
        if not 0.05 <= self.validation <= 0.5:
            raise ConfigError("validation", f"must be in [0.05, 0.5], got {self.validation!r}")
        if self.combine not in ("auto", "best", "blend"):
            raise ConfigError("combine", f"must be auto, best or blend, got {self.combine!r}")
        seasonal_period(self.step, self.season)

    @property
    def horizon_steps(self) -> int:
        return max(1, math.ceil(self.horizon / self.step))


def default_models(step: float, season: float = 86400.0) -> tuple[Model, ...]:
    """Seasonal naive (a day; the mean of the last 7 days; a week), Holt-Winters with the
    daily season, a linear trend over the last hour, and simple exponential smoothing."""
    m = seasonal_period(step, season)
    hour = max(2, round(3600.0 / step))
    return (
        SeasonalNaive(m),
        SeasonalNaive(m, seasons=7),
        SeasonalNaive(7 * m),
        HoltWinters(m),
        LinearTrend(hour),
        ExponentialSmoothing(),
    )


@dataclass(frozen=True, slots=True)
class LoadForecast:
    """Requests per step from ``start`` on (``point``, and ``upper`` at ``quantile``), with
    the combination (``model``, ``weights``) and each model's backtest error (mean absolute
    error, requests per step)."""

    start: float
    step: float
    point: FloatArray
    upper: FloatArray
    quantile: float
    model: str
    weights: dict[str, float]
    errors: dict[str, float]

    def rate(self) -> FloatArray:
        """Point forecast, requests per second."""
        return self.point / self.step

    def upper_rate(self) -> FloatArray:
        """Upper forecast, requests per second."""
        return self.upper / self.step

    def window(self, start: float, end: float) -> tuple[float, float]:
        """The highest point and upper rates (requests/s) of the steps overlapping
        ``[start, end]`` (clamped to the forecast's span)."""
        n = len(self.point)
        i = int(np.clip(np.floor((start - self.start) / self.step), 0, n - 1))
        j = int(np.clip(np.floor((end - self.start) / self.step), i, n - 1))
        return float(self.point[i : j + 1].max() / self.step), float(
            self.upper[i : j + 1].max() / self.step
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "step": self.step,
            "point_rps": [round(float(v), 6) for v in self.rate()],
            "upper_rps": [round(float(v), 6) for v in self.upper_rate()],
            "quantile": self.quantile,
            "model": self.model,
            "weights": self.weights,
            "backtest_mae": self.errors,
        }


@dataclass(frozen=True, slots=True)
class FittedPredictor:
    """The fitted models, their weights and the residual quantile per horizon step."""

    settings: PredictorSettings
    models: tuple[Fitted, ...]
    weights: tuple[float, ...]
    margin: FloatArray
    errors: dict[str, float]
    model: str
    fitted_at: float

    def filter(self, y: FloatArray) -> tuple[Any, ...]:
        return tuple(m.filter(y) for m in self.models)

    def update(self, states: tuple[Any, ...], y: FloatArray) -> tuple[Any, ...]:
        return tuple(m.update(s, y) for m, s in zip(self.models, states, strict=True))

    def point(self, states: tuple[Any, ...], h: int) -> FloatArray:
        out = np.zeros(h)
        for m, s, w in zip(self.models, states, self.weights, strict=True):
            if w > 0:
                out += w * m.forecast(s, h)
        return out

    def forecast(self, states: tuple[Any, ...], h: int, start: float) -> LoadForecast:
        point = self.point(states, h)
        margin = self.margin[np.minimum(np.arange(h), len(self.margin) - 1)]
        return LoadForecast(
            start=start,
            step=self.settings.step,
            point=point,
            upper=np.maximum(point + margin, point),
            quantile=self.settings.quantile,
            model=self.model,
            weights={m.name: round(w, 4) for m, w in zip(self.models, self.weights, strict=True)},
            errors=self.errors,
        )

    def predict(self, history: LoadSeries, horizon: float | None = None) -> LoadForecast:
        """LoadForecast from the end of ``history`` (any step dividing :attr:`settings.step`)."""
        series = _prepare(history, self.settings)
        h = max(1, math.ceil((horizon or self.settings.horizon) / self.settings.step))
        return self.forecast(self.filter(series.values), h, series.end)


def _prepare(history: LoadSeries, s: PredictorSettings) -> LoadSeries:
    series = history.resample(s.step)
    keep = int(s.max_history // s.step)
    if len(series) > keep:
        series = LoadSeries(series.end - keep * s.step, s.step, series.values[-keep:])
    return series


def backtest(
    fitted: Sequence[Fitted], train: FloatArray, valid: FloatArray, h: int
) -> tuple[FloatArray, FloatArray]:
    """Rolling-origin forecasts: ``forecasts[k, i, j]`` is model ``k``'s forecast of
    ``valid[i + j]`` made after seeing ``train`` and ``valid[:i]``; ``actual[i, j]`` the
    value (NaN beyond the end)."""
    n = len(valid)
    forecasts = np.zeros((len(fitted), n, h))
    for k, m in enumerate(fitted):
        state = m.filter(train)
        for i in range(n):
            forecasts[k, i] = m.forecast(state, h)
            state = m.update(state, valid[i : i + 1])
    actual = np.full((n, h), np.nan)
    for j in range(h):
        actual[: n - j, j] = valid[j:]
    return forecasts, actual


def fit_predictor(
    history: LoadSeries,
    settings: PredictorSettings | None = None,
    models: Sequence[Model] | None = None,
) -> FittedPredictor:
    """Fit, backtest and combine the models on ``history`` (see the module docstring)."""
    s = settings or PredictorSettings()
    series = _prepare(history, s)
    y = series.values
    h = s.horizon_steps
    candidates = tuple(models) if models is not None else default_models(s.step, s.season)
    n_valid = max(int(len(y) * s.validation), math.ceil(s.min_validation / s.step), h + 1)
    train = y[:-n_valid]
    usable = [m for m in candidates if m.min_history() <= len(train)]
    if not usable:
        need = min(m.min_history() for m in candidates) + n_valid
        raise ConfigError(
            "history",
            f"{len(y)} steps of {s.step:g} s are too few to fit and backtest a forecast; "
            f"need at least {need}",
        )
    valid = y[-n_valid:]
    fitted_train = [m.fit(train) for m in usable]
    fc, actual = backtest(fitted_train, train, valid, h)
    mask = ~np.isnan(actual)
    mae = np.array([np.abs(fc[k] - actual)[mask].mean() for k in range(len(usable))])
    names = [m.name for m in fitted_train]
    best = int(np.argmin(mae))
    inv = 1.0 / np.maximum(mae, 1e-9)
    top = np.argsort(mae)[:3]
    blend_w = np.zeros(len(usable))
    blend_w[top] = inv[top] / inv[top].sum()
    best_w = np.zeros(len(usable))
    best_w[best] = 1.0
    blend_fc = np.tensordot(blend_w, fc, axes=1)
    blend_mae = float(np.abs(blend_fc - actual)[mask].mean())
    use_blend = s.combine == "blend" or (s.combine == "auto" and blend_mae < mae[best])
    weights = blend_w if use_blend else best_w
    combined = blend_fc if use_blend else fc[best]
    resid = actual - combined
    margin = np.array(
        [
            float(np.quantile(resid[:, j][~np.isnan(resid[:, j])], s.quantile))
            if np.any(~np.isnan(resid[:, j]))
            else 0.0
            for j in range(h)
        ]
    )
    errors = {n: round(float(e), 4) for n, e in zip(names, mae, strict=True)}
    errors["blend"] = round(blend_mae, 4)
    chosen = "blend" if use_blend else names[best]
    return FittedPredictor(
        s, tuple(fitted_train), tuple(float(w) for w in weights), margin, errors, chosen, series.end
    )


@dataclass
class LoadPredictor:
    """The post's ``LoadPredictor``: ``predict(history, prediction_horizon=timedelta(minutes=15))``
    returns a :class:`LoadForecast` of the request rate. The fit (candidate models, rolling
    backtest, combination) is redone when none exists or when the history has moved
    ``refit_interval`` past the last one."""

    settings: PredictorSettings = field(default_factory=PredictorSettings)
    models: Sequence[Model] | None = None
    fitted: FittedPredictor | None = None

    def fit(self, history: LoadSeries) -> FittedPredictor:
        self.fitted = fit_predictor(history, self.settings, self.models)
        return self.fitted

    def needs_fit(self, history: LoadSeries) -> bool:
        return (
            self.fitted is None
            or history.end - self.fitted.fitted_at >= self.settings.refit_interval
        )

    def predict(
        self,
        history: LoadSeries,
        prediction_horizon: dt.timedelta | float = dt.timedelta(minutes=15),
    ) -> LoadForecast:
        horizon = (
            prediction_horizon.total_seconds()
            if isinstance(prediction_horizon, dt.timedelta)
            else float(prediction_horizon)
        )
        check_positive("prediction_horizon", horizon)
        if self.needs_fit(history):
            self.fit(history)
        assert self.fitted is not None
        return self.fitted.predict(history, horizon)
