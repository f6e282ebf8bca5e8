"""Quantile forecasts of the arrivals in the next start-up window, conditioned on recent load.

A point forecast plus a margin sizes for the typical next minutes; bursts on a quiet service
(a user who starts a batch of requests) are what break an SLO shorter than the replicas'
start-up time. :func:`fit_burst_quantiles` learns, from the arrival history (requests per
step), the empirical distribution of ``A`` — the requests that arrive in the next ``window``
seconds — conditioned on the recent load: the requests of the last ``short`` seconds and of
the last ``long`` seconds, each binned on a doubling scale (0, 1, 2–3, 4–7, …). Every cell's
``quantile`` of ``A`` is its own empirical quantile when it holds at least ``min_samples``
origins, else that of the short-span bin alone, else that of all origins (a non-parametric
quantile regression: each origin's future is judged only against origins that looked like
it). It is also a conformal-style calibration: the table's quantile of the *realised*
future counts is the forecast, so on the fitting history the share of windows above it is
at most ``1 − quantile`` in every cell that has its own entry.

Measured before hand-writing it (``python -m benchmarks.autoscaling --quantiles``: the main
trace's fitting period, held-out last three days): its pinball loss is at or below
scikit-learn's ``HistGradientBoostingRegressor(loss="quantile")`` and linear
``QuantileRegressor`` on the same two features at the 0.8, 0.9 and 0.95 quantiles, it fits
in milliseconds instead of seconds, and it needs numpy only (scikit-learn is no runtime
dependency). With ``season`` > 1 the cells are also conditioned on the time of day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ._types import LoadSeries, check_positive, check_whole

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True, slots=True)
class BurstSettings:
    """``window``:
    seconds of arrivals from now that it covers (the start-up time plus the SLO and a
    decision interval, rounded up to whole history steps); ``short``/``long``: the recent
    spans it is conditioned on; ``bins``: doubling bins per span (the last one open);
    ``min_samples``: origins a cell needs to give its own quantile; ``span``: the seconds
    over which the window's requests are taken to arrive when sizing for them (0: at once,
    the burst case; :meth:`BurstQuantiles.replicas`); ``season``: levels of the daily
    profile (the mean arrivals of each ``season_slot`` of the day over the history, split
    into this many equal groups of slots) the cells are also conditioned on (1: off)."""

    window: float = 180.0
    short: float = 300.0
    long: float = 3600.0
    bins: int = 7
    min_samples: int = 40
    span: float = 0.0
    season: int = 1
    season_slot: float = 3600.0
    period: float = 86400.0

    def __post_init__(self) -> None:
        check_positive("window", self.window)
        check_positive("short", self.short)
        check_positive("long", self.long)
        if self.long < self.short:
            raise ConfigError("long", f"must be >= short ({self.short}), got {self.long}")
        check_whole("bins", self.bins, 2)
        check_whole("min_samples", self.min_samples, 1)
        check_positive("span", self.span, allow_zero=True)
        check_whole("season", self.season, 1)
        check_positive("season_slot", self.season_slot)
        check_positive("period", self.period)
        slots = self.period / self.season_slot
        if abs(slots - round(slots)) > 1e-9 or round(slots) < self.season:
            raise ConfigError(
                "season_slot",
                f"must divide the period ({self.period:g} s) into at least season "
                f"({self.season}) slots, got {self.season_slot:g}",
            )


def check_quantile(name: str, q: float) -> None:
    """A :class:`ConfigError` naming ``name`` unless ``q`` is in [0.5, 1)."""
    if not isinstance(q, (int, float)) or isinstance(q, bool) or not 0.5 <= q < 1.0:
        raise ConfigError(name, f"must be in [0.5, 1), got {q!r}")


def _bin(counts: FloatArray, bins: int) -> IntArray:
    """0 → 0, 1 → 1, 2–3 → 2, 4–7 → 3, … (doubling), capped at ``bins − 1``."""
    c = np.maximum(np.asarray(counts, dtype=np.float64), 0.0)
    b = np.where(c < 1.0, 0, np.floor(np.log2(np.maximum(c, 1.0))).astype(np.int64) + 1)
    return np.minimum(b, bins - 1).astype(np.int64)


def _steps(seconds: float, step: float) -> int:
    return max(1, math.ceil(seconds / step - 1e-9))


@dataclass(frozen=True, slots=True)
class BurstQuantiles:
    """The fitted table: ``seasonal[i, j, k]`` the quantile of the window's arrivals after a
    short span in bin ``i`` and a long span in bin ``j`` at a time of day of profile level
    ``k`` (``levels[slot]``), ``cells[i, j]`` the same at any time of day (NaN where too few
    origins), ``by_short`` the short span's marginal, ``pooled`` all origins'; ``samples``
    the origins fitted on."""

    settings: BurstSettings
    quantile: float
    step: float
    cells: FloatArray
    by_short: FloatArray
    seasonal: FloatArray
    levels: IntArray
    pooled: float
    samples: int
    fitted_at: float

    def level(self, at: float) -> int:
        """The daily profile's level at time ``at`` (the history's time base)."""
        s = self.settings
        return int(self.levels[int((at % s.period) // s.season_slot)])

    def upper(self, short_count: float, long_count: float, at: float | None = None) -> float:
        """The ``quantile`` of the arrivals in the next ``window`` seconds after these recent
        counts (at time ``at``, where the table is conditioned on the time of day)."""
        i = int(_bin(np.array([short_count]), self.settings.bins)[0])
        j = int(_bin(np.array([long_count]), self.settings.bins)[0])
        k = self.level(at) if at is not None else 0
        first = self.seasonal[i, j, k] if at is not None else math.nan
        for v in (first, self.cells[i, j], self.by_short[i]):
            if not math.isnan(v):
                return float(v)
        return self.pooled

    def recent(self, load: LoadSeries) -> tuple[float, float]:
        """The requests of the last ``short`` and ``long`` seconds of ``load`` (its step must
        be the one fitted on)."""
        if abs(load.step - self.step) > 1e-9 * self.step:
            raise ConfigError(
                "load.step", f"the table was fitted on {self.step:g} s steps, got {load.step:g}"
            )
        s = self.settings
        y = load.values
        return float(y[-_steps(s.short, self.step) :].sum()), float(
            y[-_steps(s.long, self.step) :].sum()
        )

    def forecast(self, load: LoadSeries) -> float:
        """The upper quantile of the arrivals in the ``window`` after ``load``'s end."""
        return self.upper(*self.recent(load), load.end)

    def replicas(self, requests: float, service_time: float, concurrency: int, slo: float) -> int:
        """Replicas that start ``requests`` (arriving over ``span`` seconds) within ``slo``
        of their arrival: each serves ``concurrency`` at once and starts
        ``1 + (span + slo) / service_time`` requests per slot in that time."""
        if requests <= 0:
            return 0
        per_replica = concurrency * (1.0 + (self.settings.span + slo) / service_time)
        return math.ceil(requests / per_replica - 1e-9)

    @property
    def window(self) -> float:
        """The window covered, seconds (whole steps)."""
        return _steps(self.settings.window, self.step) * self.step


def fit_burst_quantiles(
    load: LoadSeries,
    quantile: float,
    settings: BurstSettings | None = None,
    *,
    max_history: float | None = None,
) -> BurstQuantiles:
    """Fit the table of ``quantile`` on ``load`` (see the module docstring); ``max_history``
    keeps only its
    last seconds. A :class:`ConfigError` when the history holds fewer than
    ``min_samples`` origins with a full look-back and window."""
    s = settings or BurstSettings()
    check_quantile("burst_quantile", quantile)
    y = np.asarray(load.values, dtype=np.float64)
    if max_history is not None:
        y = y[-max(1, int(max_history // load.step)) :]
    ks, kl, kw = (_steps(v, load.step) for v in (s.short, s.long, s.window))
    n = len(y) - kl - kw + 1
    if n < s.min_samples:
        raise ConfigError(
            "history",
            f"{len(y)} steps of {load.step:g} s are too few to fit burst quantiles; need at "
            f"least {kl + kw - 1 + s.min_samples}",
        )
    c = np.concatenate(([0.0], np.cumsum(y)))
    origins = np.arange(kl, kl + n)  # the window starts at step `origin`
    short = c[origins] - c[origins - ks]
    long_ = c[origins] - c[origins - kl]
    future = c[origins + kw] - c[origins]
    bs, bl = _bin(short, s.bins), _bin(long_, s.bins)
    start = load.end - len(y) * load.step
    slots = round(s.period / s.season_slot)
    slot = (((start + origins * load.step) % s.period) // s.season_slot).astype(np.int64)
    levels = _levels(y, start, load.step, s, slots)
    level = levels[slot]
    cells = np.full((s.bins, s.bins), np.nan)
    seasonal = np.full((s.bins, s.bins, s.season), np.nan)
    by_short = np.full(s.bins, np.nan)
    for i in range(s.bins):
        row = bs == i
        if row.sum() >= s.min_samples:
            by_short[i] = np.quantile(future[row], quantile, method="higher")
        for j in range(s.bins):
            cell = row & (bl == j)
            if cell.sum() >= s.min_samples:
                cells[i, j] = np.quantile(future[cell], quantile, method="higher")
                for k in range(s.season if s.season > 1 else 0):
                    sub = cell & (level == k)
                    if sub.sum() >= s.min_samples:
                        seasonal[i, j, k] = np.quantile(future[sub], quantile, method="higher")
    pooled = float(np.quantile(future, quantile, method="higher"))
    return BurstQuantiles(
        s, quantile, load.step, cells, by_short, seasonal, levels, pooled, int(n), load.end
    )


def _levels(y: FloatArray, start: float, step: float, s: BurstSettings, slots: int) -> IntArray:
    """Each slot of the day's level: the slots ranked by their mean arrivals over ``y`` and
    split into ``s.season`` equal groups (0: the quietest)."""
    if s.season == 1:
        return np.zeros(slots, dtype=np.int64)
    slot = (((start + np.arange(len(y)) * step) % s.period) // s.season_slot).astype(np.int64)
    total = np.bincount(slot, weights=y, minlength=slots)
    seen = np.bincount(slot, minlength=slots)
    mean = total / np.maximum(seen, 1)
    rank = np.argsort(np.argsort(mean, kind="stable"), kind="stable")
    return (rank * s.season // slots).astype(np.int64)
