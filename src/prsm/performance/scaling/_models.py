"""The forecasting models: a small numpy core, each a pure filter.

A model is fitted once on a history (:meth:`Model.fit` returns a :class:`Fitted` with the
chosen parameters); the fitted model turns a history into a state (:meth:`Fitted.filter`),
moves a state on by new observations (:meth:`Fitted.update`, O(new points)) and forecasts
``h`` steps from a state (:meth:`Fitted.forecast`). States are immutable values, so a rolling
backtest and the live policy move them forward without refitting.

- :class:`SeasonalNaive` — the value one season ago (or the mean of the last ``seasons``
  seasons): the benchmark every seasonal forecast must beat;
- :class:`HoltWinters` — additive level, damped trend and season (Holt-Winters), smoothing
  parameters fitted by least squares of the one-step errors (scipy's L-BFGS-B), optionally
  on square roots (counts: a variance-stabilising transform);
- :class:`LinearTrend` — an ordinary least-squares line through the last ``window`` points;
- :class:`ExponentialSmoothing` — the level alone (simple exponential smoothing).

Forecasts are clipped at zero (request counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import ConfigError
from ._types import check_whole

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


class Fitted(Protocol):
    """A model with its parameters chosen."""

    @property
    def name(self) -> str: ...

    def filter(self, y: FloatArray) -> Any:
        """The state after observing all of ``y``."""
        ...

    def update(self, state: Any, y: FloatArray) -> Any:
        """The state after observing ``y`` more points."""
        ...

    def forecast(self, state: Any, h: int) -> FloatArray:
        """The next ``h`` values."""
        ...

    def parameters(self) -> dict[str, Any]: ...


class Model(Protocol):
    """A model family; :meth:`fit` chooses its parameters on a history."""

    @property
    def name(self) -> str: ...

    def min_history(self) -> int:
        """Points the model needs before it can be fitted."""
        ...

    def fit(self, y: FloatArray) -> Fitted: ...


# -- seasonal naive ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeasonalNaive:
    """``ŷ[t + h]`` = the value at the same phase one season back, averaged over the last
    ``seasons`` seasons. Nothing to fit."""

    period: int
    seasons: int = 1

    def __post_init__(self) -> None:
        check_whole("period", self.period, 1)
        check_whole("seasons", self.seasons, 1)

    @property
    def name(self) -> str:
        return f"seasonal_naive(m={self.period}" + (
            f", k={self.seasons})" if self.seasons > 1 else ")"
        )

    def min_history(self) -> int:
        return self.period * self.seasons

    def fit(self, y: FloatArray) -> SeasonalNaive:
        return self

    def parameters(self) -> dict[str, Any]:
        return {"period": self.period, "seasons": self.seasons}

    def filter(self, y: FloatArray) -> FloatArray:
        keep = self.period * self.seasons
        tail = np.asarray(y[-keep:], dtype=np.float64)
        if len(tail) < keep:  # too short: pad with the mean so forecasts stay defined
            fill = float(tail.mean()) if len(tail) else 0.0
            tail = np.concatenate((np.full(keep - len(tail), fill), tail))
        return tail

    def update(self, state: FloatArray, y: FloatArray) -> FloatArray:
        if len(y) == 0:
            return state
        return np.concatenate((state, y))[-len(state) :]

    def forecast(self, state: FloatArray, h: int) -> FloatArray:
        m = self.period
        seasons = state.reshape(self.seasons, m).mean(axis=0)
        idx = np.arange(h) % m
        out: FloatArray = np.maximum(seasons[idx], 0.0)
        return out


# -- linear trend --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinearTrend:
    """An ordinary least-squares line through the last ``window`` points, extended."""

    window: int = 12

    def __post_init__(self) -> None:
        check_whole("window", self.window, 2)

    @property
    def name(self) -> str:
        return f"linear_trend(w={self.window})"

    def min_history(self) -> int:
        return self.window

    def fit(self, y: FloatArray) -> LinearTrend:
        return self

    def parameters(self) -> dict[str, Any]:
        return {"window": self.window}

    def filter(self, y: FloatArray) -> FloatArray:
        return np.asarray(y[-self.window :], dtype=np.float64)

    def update(self, state: FloatArray, y: FloatArray) -> FloatArray:
        if len(y) == 0:
            return state
        return np.concatenate((state, y))[-self.window :]

    def forecast(self, state: FloatArray, h: int) -> FloatArray:
        n = len(state)
        if n == 0:
            return np.zeros(h)
        if n == 1:
            return np.full(h, max(0.0, float(state[0])))
        x = np.arange(n, dtype=np.float64)
        slope, intercept = np.polyfit(x, state, 1)
        ahead = np.arange(n, n + h, dtype=np.float64)
        out: FloatArray = np.maximum(intercept + slope * ahead, 0.0)
        return out


# -- simple exponential smoothing ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExponentialSmoothing:
    """The level alone: ``ℓ ← α·y + (1 − α)·ℓ``; ``alpha`` None fits it."""

    alpha: float | None = None

    @property
    def name(self) -> str:
        return "exp_smoothing"

    def min_history(self) -> int:
        return 2

    def fit(self, y: FloatArray) -> _FittedSES:
        if self.alpha is not None:
            return _FittedSES(float(self.alpha))
        grid = np.linspace(0.02, 0.98, 25)
        errs = [_ses_sse(y, a) for a in grid]
        return _FittedSES(float(grid[int(np.argmin(errs))]))


def _ses_sse(y: FloatArray, alpha: float) -> float:
    level = float(y[0])
    sse = 0.0
    for v in y[1:]:
        e = float(v) - level
        sse += e * e
        level += alpha * e
    return sse


@dataclass(frozen=True, slots=True)
class _FittedSES:
    alpha: float

    @property
    def name(self) -> str:
        return "exp_smoothing"

    def parameters(self) -> dict[str, Any]:
        return {"alpha": round(self.alpha, 4)}

    def filter(self, y: FloatArray) -> float:
        if len(y) == 0:
            return 0.0
        return self.update(float(y[0]), y[1:])

    def update(self, state: float, y: FloatArray) -> float:
        level = state
        a = self.alpha
        for v in y:
            level += a * (float(v) - level)
        return level

    def forecast(self, state: float, h: int) -> FloatArray:
        return np.full(h, max(0.0, state))


# -- Holt-Winters --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HWState:
    """Holt-Winters' state: level, trend, the season's ``period`` values (``season[i]`` is
    the next point's), on the transformed scale."""

    level: float
    trend: float
    season: FloatArray


@dataclass(frozen=True, slots=True)
class HoltWinters:
    """Additive Holt-Winters with a damped trend. ``transform`` ``"sqrt"`` models square
    roots of the counts (forecasts are squared back, with the variance term added)."""

    period: int
    transform: str = "sqrt"
    damped: bool = True
    max_fit_points: int = 4032

    def __post_init__(self) -> None:
        check_whole("period", self.period, 2)
        if self.transform not in ("none", "sqrt"):
            raise ConfigError("transform", f"must be none or sqrt, got {self.transform!r}")
        check_whole("max_fit_points", self.max_fit_points, 2 * self.period + 2)

    @property
    def name(self) -> str:
        return f"holt_winters(m={self.period})"

    def min_history(self) -> int:
        return 2 * self.period + 2

    def fit(self, y: FloatArray) -> FittedHoltWinters:
        from scipy.optimize import minimize

        if len(y) < self.min_history():
            raise ConfigError(
                "history", f"{self.name} needs {self.min_history()} points, got {len(y)}"
            )
        z = _forward(np.asarray(y[-self.max_fit_points :], dtype=np.float64), self.transform)
        m = self.period

        def sse(p: FloatArray) -> float:
            fitted = FittedHoltWinters(self, float(p[0]), float(p[1]), float(p[2]), float(p[3]))
            return fitted.sse(z)

        best = None
        for start in ((0.1, 0.01, 0.1, 0.95), (0.3, 0.05, 0.3, 0.9)):
            res = minimize(
                sse,
                np.asarray(start),
                method="L-BFGS-B",
                bounds=[
                    (0.001, 0.999),
                    (0.0, 0.5),
                    (0.001, 0.999),
                    (0.8 if self.damped else 1.0, 1.0),
                ],
                options={"maxiter": 60},
            )
            if best is None or res.fun < best.fun:
                best = res
        assert best is not None
        a, b, g, phi = (float(v) for v in best.x)
        sigma2 = float(best.fun) / max(1, len(z) - 2 * m)
        return FittedHoltWinters(self, a, b, g, phi, sigma2)


def _forward(y: FloatArray, transform: str) -> FloatArray:
    return np.sqrt(np.maximum(y, 0.0)) if transform == "sqrt" else y


@dataclass(frozen=True, slots=True)
class FittedHoltWinters:
    spec: HoltWinters
    alpha: float
    beta: float
    gamma: float
    phi: float
    sigma2: float = 0.0

    @property
    def name(self) -> str:
        return self.spec.name

    def parameters(self) -> dict[str, Any]:
        return {
            "period": self.spec.period,
            "alpha": round(self.alpha, 4),
            "beta": round(self.beta, 4),
            "gamma": round(self.gamma, 4),
            "phi": round(self.phi, 4),
            "transform": self.spec.transform,
        }

    def _init(self, z: FloatArray) -> HWState:
        m = self.spec.period
        first, second = z[:m], z[m : 2 * m]
        level = float(second.mean())
        trend = float((second.mean() - first.mean()) / m)
        season = (first + second) / 2.0 - (first.mean() + second.mean()) / 2.0
        return HWState(level, trend, season.astype(np.float64))

    def _run(self, state: HWState, z: FloatArray, collect: bool = False) -> tuple[HWState, float]:
        a, b, g, phi = self.alpha, self.beta, self.gamma, self.phi
        level, trend = state.level, state.trend
        season = state.season.tolist()
        m = len(season)
        sse = 0.0
        i = 0
        for v in z.tolist():
            s = season[i]
            pred = level + phi * trend + s
            e = v - pred
            sse += e * e
            new_level = level + phi * trend + a * e
            trend = phi * trend + b * a * e
            season[i] = s + g * (1 - a) * e
            level = new_level
            i = (i + 1) % m
        rolled = season[i:] + season[:i]
        return HWState(level, trend, np.asarray(rolled)), sse

    def sse(self, z: FloatArray) -> float:
        m = self.spec.period
        state = self._init(z)
        _, err = self._run(state, z[2 * m :])
        return err

    def filter(self, y: FloatArray) -> HWState:
        z = _forward(np.asarray(y, dtype=np.float64), self.spec.transform)
        m = self.spec.period
        if len(z) < 2 * m:
            fill = float(z.mean()) if len(z) else 0.0
            z = np.concatenate((np.full(2 * m - len(z), fill), z))
        state = self._init(z)
        return self._run(state, z[2 * m :])[0]

    def update(self, state: HWState, y: FloatArray) -> HWState:
        if len(y) == 0:
            return state
        return self._run(state, _forward(np.asarray(y, dtype=np.float64), self.spec.transform))[0]

    def forecast(self, state: HWState, h: int) -> FloatArray:
        m = self.spec.period
        phi = self.phi
        steps = np.arange(1, h + 1, dtype=np.float64)
        damp = steps if phi == 1.0 else phi * (1 - phi**steps) / (1 - phi)
        z = state.level + damp * state.trend + state.season[np.arange(h) % m]
        if self.spec.transform == "sqrt":
            return np.maximum(z, 0.0) ** 2 + self.sigma2
        return np.maximum(z, 0.0)


def seasonal_period(step: float, season: float = 86400.0) -> int:
    """Points per season (a day by default) at ``step`` seconds; a :class:`ConfigError` if
    the season is not a whole number of steps."""
    m = season / step
    if abs(m - round(m)) > 1e-9 or round(m) < 2:
        raise ConfigError(
            "step", f"a season of {season:g} s is not a whole number of {step:g} s steps"
        )
    return math.floor(m + 0.5)
