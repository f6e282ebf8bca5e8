"""Trends of a series over a window: Theil–Sen slope with its confidence interval and the
Mann–Kendall test, seasonality handled by Hirsch's seasonal Kendall test.

With a ``period`` (seconds, e.g. a day) the points are split into ``seasons`` phase buckets of
that period (hour of the day by default); the test statistic and the slope only compare points
of the same season, so a daily cycle is not mistaken for a trend (Hirsch, Slack & Smith 1982).
Without one it is the plain Mann–Kendall test and Theil–Sen estimator, equal to
``scipy.stats.kendalltau`` / ``scipy.stats.theilslopes`` (the tests check it); they are written
out here because scipy has no seasonal form, and pymannkendall's pure-Python loops took 1 s for
4,032 points where this takes milliseconds. Long windows are first averaged into at most
``max_points`` equal time buckets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from ..errors import ConfigError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TrendSettings:
    """How :class:`TrendDetector` decides."""

    alpha: float = 0.05
    """Significance level of the test, and 1 - the confidence of the slope's interval."""
    period: float | None = None
    """Seasonal period in seconds (86400: a daily cycle); None: no seasonality."""
    seasons: int = 24
    """Phase buckets per period."""
    max_points: int = 512
    min_points: int = 8

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ConfigError("alpha", f"must be in (0, 1), got {self.alpha!r}")
        if self.period is not None and not self.period > 0:
            raise ConfigError("period", f"must be > 0 seconds or None, got {self.period!r}")
        if self.seasons < 1:
            raise ConfigError("seasons", f"must be >= 1, got {self.seasons!r}")
        if self.min_points < 3:
            raise ConfigError("min_points", f"must be >= 3, got {self.min_points!r}")
        if self.max_points < self.min_points:
            raise ConfigError("max_points", "must be >= min_points")


@dataclass(frozen=True, slots=True)
class Trend:
    """A window's trend. ``slope`` and its interval are in value units per second."""

    direction: str  # "increasing", "decreasing" or "no trend"
    slope: float
    slope_low: float
    slope_high: float
    intercept: float
    p_value: float
    z: float
    n: int
    seasonal: bool
    start: float
    end: float

    @property
    def significant(self) -> bool:
        return self.direction != "no trend"

    def change(self) -> float:
        """The change the slope makes over the window, in value units."""
        return self.slope * (self.end - self.start)

    def as_dict(self) -> dict[str, object]:
        return {
            "direction": self.direction,
            "slope_per_s": self.slope,
            "slope_ci": [self.slope_low, self.slope_high],
            "intercept": self.intercept,
            "p_value": self.p_value,
            "n": self.n,
            "seasonal": self.seasonal,
            "change": self.change(),
        }


class TrendDetector:
    """``TrendDetector(settings).analyze(timestamps, values) -> Trend``."""

    def __init__(self, settings: TrendSettings | None = None) -> None:
        self.settings = settings or TrendSettings()

    def analyze(self, timestamps: npt.ArrayLike, values: npt.ArrayLike) -> Trend:
        s = self.settings
        t = np.asarray(timestamps, dtype=np.float64)
        x = np.asarray(values, dtype=np.float64)
        if t.shape != x.shape or t.ndim != 1:
            raise ConfigError("values", f"need one value a timestamp, got {x.shape} / {t.shape}")
        keep = np.isfinite(t) & np.isfinite(x)
        t, x = t[keep], x[keep]
        order = np.argsort(t, kind="stable")
        t, x = t[order], x[order]
        if len(t) > s.max_points:
            t, x = _bucket(t, x, s.max_points)
        if len(t) < s.min_points:
            raise ConfigError("values", f"need at least {s.min_points} points, got {len(t)}")
        if s.period is not None:
            season = (np.floor((t % s.period) / s.period * s.seasons)).astype(np.int64)
        else:
            season = np.zeros(len(t), dtype=np.int64)
        total_s = 0.0
        total_var = 0.0
        slopes: list[FloatArray] = []
        for k in np.unique(season):
            tk, xk = t[season == k], x[season == k]
            if len(tk) < 2:
                continue
            s_k, var_k, slopes_k = _kendall(tk, xk)
            total_s += s_k
            total_var += var_k
            slopes.append(slopes_k)
        all_slopes = np.sort(np.concatenate(slopes)) if slopes else np.zeros(0)
        if total_var <= 0 or all_slopes.size == 0:
            z, p = 0.0, 1.0
        else:
            z = (total_s - math.copysign(1.0, total_s)) / math.sqrt(total_var) if total_s else 0.0
            p = float(2 * stats.norm.sf(abs(z)))
        slope = float(np.median(all_slopes)) if all_slopes.size else 0.0
        low, high = _slope_interval(all_slopes, total_var, s.alpha)
        intercept = float(np.median(x - slope * t))
        direction = "no trend"
        if p < s.alpha:
            direction = "increasing" if z > 0 else "decreasing"
        return Trend(
            direction=direction,
            slope=slope,
            slope_low=low,
            slope_high=high,
            intercept=intercept,
            p_value=p,
            z=float(z),
            n=len(t),
            seasonal=s.period is not None,
            start=float(t[0]),
            end=float(t[-1]),
        )


def _kendall(t: FloatArray, x: FloatArray) -> tuple[float, float, FloatArray]:
    """Mann–Kendall S, its tie-corrected variance, and the pairwise slopes (distinct times)."""
    n = len(x)
    i, j = np.triu_indices(n, k=1)
    dx = x[j] - x[i]
    dt = t[j] - t[i]
    s = float(np.sign(dx).sum())
    _, counts = np.unique(x, return_counts=True)
    ties = counts[counts > 1].astype(np.float64)
    var = (n * (n - 1) * (2 * n + 5) - float((ties * (ties - 1) * (2 * ties + 5)).sum())) / 18.0
    ok = dt > 0
    return s, var, dx[ok] / dt[ok]


def _slope_interval(slopes: FloatArray, var_s: float, alpha: float) -> tuple[float, float]:
    """Sen's rank-based confidence interval (as ``scipy.stats.theilslopes``)."""
    n = slopes.size
    if n == 0:
        return 0.0, 0.0
    if var_s <= 0:
        return float(slopes[0]), float(slopes[-1])
    c = float(stats.norm.ppf(1 - alpha / 2)) * math.sqrt(var_s)
    lo = int(np.clip(np.round((n - c) / 2.0) - 1, 0, n - 1))
    hi = int(np.clip(np.round((n + c) / 2.0), 0, n - 1))
    return float(slopes[lo]), float(slopes[hi])


def _bucket(t: FloatArray, x: FloatArray, k: int) -> tuple[FloatArray, FloatArray]:
    """Average into at most ``k`` equal time buckets (empty buckets dropped)."""
    edges = np.linspace(t[0], t[-1], k + 1)
    idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, k - 1)
    counts = np.bincount(idx, minlength=k)
    tsum = np.bincount(idx, weights=t, minlength=k)
    xsum = np.bincount(idx, weights=x, minlength=k)
    m = counts > 0
    return tsum[m] / counts[m], xsum[m] / counts[m]
