"""A third detector family measured against ours for the anomaly benchmark, and not adopted:
a *spread shift*, the standard deviation of the last ``window`` values against that of the
``reference`` values before them (a series that starts or stops varying, bursts that stop).

The surprise is ``|log(sd_recent / sd_reference)|`` (each plus a thousandth of the warm-up's
range, so that flat stretches compare), squashed by ``1 - exp(-s / scale)``, calibrated by
Numenta's anomaly likelihood (the one :class:`~prsm.performance.analytics.AnomalyDetector`
uses), muted until the reference is full and one estimate has been made, and fused with our
score by ``_anomaly_discord.fuse``. O(1) a point (running sums).

Measured and not taken (the benchmark's rows ``... spread shift ... (variant, not adopted)``):
taking the larger of the two changes nothing on the fitted categories at five of the six
settings tried (its likelihood rarely reaches our threshold: a slowly moving statistic's
averages vary widely, so its calibrated tail is seldom small) and loses at the sixth; adding a
share of it loses there at every setting.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from benchmarks._anomaly_discord import fuse
from prsm.performance.analytics import AnomalySettings, NabSeries
from prsm.performance.analytics._detector import _Likelihood

FloatArray = npt.NDArray[np.float64]


class _Window:
    """Running mean and standard deviation of the values it holds."""

    __slots__ = ("_s1", "_s2", "values")

    def __init__(self) -> None:
        self.values: deque[float] = deque()
        self._s1 = self._s2 = 0.0

    def push(self, v: float) -> None:
        self.values.append(v)
        self._s1 += v
        self._s2 += v * v

    def pop(self) -> float:
        v = self.values.popleft()
        self._s1 -= v
        self._s2 -= v * v
        return v

    def sd(self) -> float:
        n = len(self.values)
        return math.sqrt(max(self._s2 / n - (self._s1 / n) ** 2, 0.0))


def spread_scores(
    values: FloatArray, *, window: int, reference: int, scale: float, warmup: int = 150
) -> FloatArray:
    """The spread shift's anomaly-likelihood score a point (NAB's log scale), online."""
    lik = _Likelihood(AnomalySettings(warmup=warmup))
    recent, ref = _Window(), _Window()
    out = np.zeros(len(values))
    lo = hi = 0.0
    mute = warmup + window + reference + AnomalySettings().reestimate_every
    for i, v in enumerate(values.tolist()):
        if i < warmup:  # the warm-up's range sets the floor
            lo, hi = (v, v) if i == 0 else (min(lo, v), max(hi, v))
        floor = 1e-3 * (hi - lo) + 1e-12
        raw = 0.0
        if len(ref.values) == reference and i >= warmup:
            raw = 1.0 - math.exp(-abs(math.log((recent.sd() + floor) / (ref.sd() + floor))) / scale)
        score = lik.update(raw, i)
        out[i] = score if i >= mute else 0.0
        recent.push(v)
        if len(recent.values) > window:
            ref.push(recent.pop())
            if len(ref.values) > reference:
                ref.pop()
    return out


@dataclass(frozen=True, slots=True)
class SpreadVariant:
    """One fusion measured: the windows, the squashing scale, the fusion weight (None: the
    larger of the two)."""

    window: int
    reference: int
    scale: float
    weight: float | None


# Chosen on the fitted categories only (window / reference 25 / 500, 50 / 500, 100 / 1000;
# scale 0.5 or 1.0; the larger of the two, or weight 0.3): the first is one of the five
# larger-of settings that tie with ours there, the second the weighted sum's best.
SPREAD_VARIANTS = {
    "ours + spread shift, larger of the two": SpreadVariant(50, 500, 1.0, None),
    "ours + 0.3 x spread shift": SpreadVariant(100, 1000, 0.5, 0.3),
}


def spread_variant_scores(
    series: Sequence[NabSeries], ours: Mapping[str, FloatArray]
) -> dict[str, dict[str, FloatArray]]:
    """Each variant's fused scores a file."""
    s = AnomalySettings()
    out: dict[str, dict[str, FloatArray]] = {}
    for label, v in SPREAD_VARIANTS.items():
        out[label] = {
            x.name: fuse(
                ours[x.name],
                spread_scores(x.values, window=v.window, reference=v.reference, scale=v.scale),
                weight=v.weight,
                hold=s.hold,
                hold_threshold=s.hold_threshold,
            )
            for x in series
        }
    return out
