"""An online anomaly detector: an ensemble of cheap online statistics, turned into a score
by Numenta's anomaly-likelihood method, with a spatial (new-extreme) override.

Every point is judged on the past only, then learned. Per point, in O(1):

* three *surprise* measures in [0, 1): the distance of the value from an exponentially
  weighted mean in units of the exponentially weighted mean absolute deviation, at a slow
  (``alpha_slow``: level shifts, trend changes) and a fast (``alpha_fast``: spikes) rate,
  and from its hour-of-day mean (``alpha_season``: seasonal deviations); the raw surprise is
  their maximum, squashed by ``1 - exp(-z / z_scale)``;
* the *anomaly likelihood* (Ahmad et al., "Unsupervised real-time anomaly detection for
  streaming data", 2017, as in nupic's ``anomaly_likelihood.py``): the raw surprise averaged
  over the last ``average_window`` points, compared with a normal distribution re-estimated
  every ``reestimate_every`` points from the last ``history`` averages; the tail probability
  is reported on NAB's log scale (``log(1 - L) / log(1e-10)``) and a run of red-zone points
  reports only its first;
* a *spatial* override: a value beyond the slowly forgetting envelope of past extremes by more
  than ``spatial_tolerance`` of its span scores 1.

Hyper-parameters were fitted on NAB's artificial, realAWSCloudwatch and realAdExchange
categories only (see the README's Analytics section); the other categories are held out.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError

_LOG_1E_10 = -23.02585084720009
_SQRT2 = math.sqrt(2.0)
_RED = 1e-5  # tail probability of the red zone (nupic's redThreshold 0.99999)
_YELLOW = 0.999


@dataclass(frozen=True, slots=True)
class AnomalySettings:
    """Hyper-parameters of :class:`AnomalyDetector` (defaults fitted as documented above)."""

    warmup: int = 150
    alpha_slow: float = 0.01
    alpha_fast: float = 0.1
    alpha_season: float = 0.05
    z_scale: float = 3.0
    average_window: int = 20
    history: int = 8640
    reestimate_every: int = 100
    min_variance: float = 3e-4
    min_mean: float = 0.03
    spatial_tolerance: float = 0.05
    envelope_decay: float = 1e-4
    threshold: float = 0.5008
    """Score at or above which a point is called an anomaly (NAB's standard-profile optimum)."""

    def __post_init__(self) -> None:
        for name in ("warmup", "average_window", "history", "reestimate_every"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)!r}")
        for name in ("alpha_slow", "alpha_fast", "alpha_season"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError(name, f"must be in (0, 1], got {value!r}")
        if not 0 <= self.envelope_decay < 1:
            raise ConfigError("envelope_decay", f"must be in [0, 1), got {self.envelope_decay!r}")
        for name in ("z_scale", "min_variance", "spatial_tolerance"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, f"must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.min_mean < 1:
            raise ConfigError("min_mean", f"must be in [0, 1), got {self.min_mean!r}")
        if not 0 < self.threshold <= 1:
            raise ConfigError("threshold", f"must be in (0, 1], got {self.threshold!r}")


class AnomalyDetector:
    """Online anomaly scores for one series: ``update(value, timestamp) -> score in [0, 1]``.

    ``kind`` names what drove the latest score: ``"out_of_range"``, ``"spike"``,
    ``"level_shift"`` (a slow-baseline departure: level shifts and trend changes) or
    ``"seasonal"`` (a departure from the hour-of-day norm).
    """

    __slots__ = (
        "_avg",
        "_avg_sum",
        "_dist",
        "_envelope",
        "_fast",
        "_global_dev",
        "_hist",
        "_prev_red",
        "_season_dev",
        "_season_mean",
        "_slow",
        "_warm",
        "count",
        "kind",
        "settings",
    )

    def __init__(self, settings: AnomalySettings | None = None) -> None:
        self.settings = s = settings or AnomalySettings()
        self.count = 0
        self.kind = "none"
        self._slow: list[float] = []  # [mean, mad]
        self._fast: list[float] = []
        self._season_mean: list[float | None] = [None] * 24
        self._season_dev = [0.0] * 24
        self._global_dev = 0.0
        self._warm: list[float] = []
        self._envelope: list[float] = []  # [lo, hi, mean]
        self._avg: deque[float] = deque(maxlen=s.average_window)
        self._avg_sum = 0.0
        self._hist: deque[float] = deque(maxlen=s.history)
        self._dist: tuple[float, float] | None = None
        self._prev_red = False

    def update(self, value: float, timestamp: float | datetime | None = None) -> float:
        """Score ``value`` against the past, then learn it. ``timestamp``: Unix seconds or a
        datetime (UTC hours drive the seasonal term; without one it is off)."""
        v = float(value)
        if not math.isfinite(v):
            raise ConfigError("value", f"must be finite, got {value!r}")
        s = self.settings
        i = self.count
        self.count = i + 1
        scoring = i >= s.warmup
        # --- surprise: slow and fast baselines
        z_slow = self._ew(self._slow, v, s.alpha_slow)
        z_fast = self._ew(self._fast, v, s.alpha_fast)
        z_season = self._season(v, timestamp, s.alpha_season) if timestamp is not None else 0.0
        if scoring:
            z, kind = z_slow, "level_shift"
            if z_fast > z:
                z, kind = z_fast, "spike"
            if z_season > z:
                z, kind = z_season, "seasonal"
            raw = 1.0 - math.exp(-z / s.z_scale)
        else:
            raw, kind = 0.0, "none"
        score = self._likelihood(raw, i)
        if self._spatial(v, i):
            score, kind = 1.0, "out_of_range"
        self.kind = kind if score > 0 else "none"
        return score

    def score_series(
        self, values: npt.ArrayLike, timestamps: npt.ArrayLike | None = None
    ) -> npt.NDArray[np.float64]:
        """Scores of a whole series, point by point (same as calling :meth:`update`)."""
        vals = np.asarray(values, dtype=np.float64).tolist()
        if timestamps is None:
            return np.array([self.update(v) for v in vals])
        ts = np.asarray(timestamps)
        if ts.shape != (len(vals),):
            raise ConfigError("timestamps", f"{ts.shape[0]} timestamps for {len(vals)} values")
        if np.issubdtype(ts.dtype, np.datetime64):
            secs = ts.astype("datetime64[s]").astype(np.int64).tolist()
        else:
            secs = ts.astype(np.float64).tolist()
        return np.array([self.update(v, t) for v, t in zip(vals, secs, strict=True)])

    @staticmethod
    def _ew(state: list[float], v: float, alpha: float) -> float:
        if not state:
            state.extend((v, 0.0))
            return 0.0
        mean, mad = state
        dev = abs(v - mean)
        z = dev / (mad + 1e-9 + 1e-4 * abs(mean))
        state[0] = mean + alpha * (v - mean)
        state[1] = mad + alpha * (dev - mad)
        return z

    def _season(self, v: float, timestamp: float | datetime, alpha: float) -> float:
        secs = timestamp.timestamp() if isinstance(timestamp, datetime) else float(timestamp)
        h = int(secs // 3600) % 24
        mean = self._season_mean[h]
        if mean is None:
            self._season_mean[h] = v
            self._season_dev[h] = self._global_dev
            return 0.0
        dev = abs(v - mean)
        mad = self._season_dev[h]
        z = dev / (mad + 1e-9 + 1e-4 * abs(mean))
        self._season_mean[h] = mean + alpha * (v - mean)
        self._season_dev[h] = mad + alpha * (dev - mad)
        self._global_dev += 0.01 * (dev - self._global_dev)
        return z

    def _likelihood(self, raw: float, i: int) -> float:
        s = self.settings
        avg = self._avg
        if len(avg) == avg.maxlen:
            self._avg_sum -= avg[0]
        avg.append(raw)
        self._avg_sum += raw
        ma = self._avg_sum / len(avg)
        start = 2 * s.warmup
        if i >= start and (i - start) % s.reestimate_every == 0:
            h = np.fromiter(self._hist, dtype=np.float64)
            self._dist = (
                max(float(h.mean()), s.min_mean),
                math.sqrt(max(float(h.var()), s.min_variance)),
            )
        if i >= s.warmup:
            self._hist.append(ma)
        if self._dist is None:
            return _log_score(0.5)
        mu, sd = self._dist
        tail = 0.5 * math.erfc((ma - mu) / sd / _SQRT2)
        red = tail <= _RED
        likelihood = _YELLOW if red and self._prev_red else 1.0 - tail
        self._prev_red = red
        return _log_score(likelihood)

    def _spatial(self, v: float, i: int) -> bool:
        s = self.settings
        env = self._envelope
        if not env:
            self._warm.append(v)
            if len(self._warm) == s.warmup:
                w = self._warm
                env.extend((min(w), max(w), sum(w) / len(w)))
                self._warm = []
            return False
        lo, hi, mean = env
        span = hi - lo
        if span <= 0:
            span = abs(hi) * 1e-3 + 1e-9
        out = False
        if v > hi:
            out = (v - hi) / span > s.spatial_tolerance
            hi = v
        elif v < lo:
            out = (lo - v) / span > s.spatial_tolerance
            lo = v
        mean += 0.01 * (v - mean)
        decay = s.envelope_decay
        env[0] = lo - decay * (lo - mean)
        env[1] = hi - decay * (hi - mean)
        env[2] = mean
        return out


def _log_score(likelihood: float) -> float:
    return max(0.0, min(1.0, math.log(1.0000000001 - likelihood) / _LOG_1E_10))
