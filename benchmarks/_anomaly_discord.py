"""A second detector family measured against ours for the anomaly benchmark, and not adopted:
the *discord* (left matrix profile) of the recent subsequence, fused with our score.

The discord of point ``i`` is the root-mean-square distance of the last ``length`` values, as a
shape, from their nearest neighbour among the subsequences ending 1..``lags`` points earlier
(lags below ``length``, overlapping matches, excluded): Yeh et al., "Matrix Profile I" (ICDM
2016), online and left-only as in Zhu et al., "Matrix Profile II" (ICDM 2016). A subsequence
that resembles nothing in the recent past is a discord whatever its level, which is the kind of
event the windows we miss were thought to be. It is kept per lag and updated in O(``lags``)
vector operations a point (about 12 µs here).

As our other surprises, it is divided by its own exponentially weighted mean (rate 0.01),
squashed by ``1 - exp(-r / scale)`` and calibrated by Numenta's anomaly likelihood (the one
:class:`~prsm.performance.analytics.AnomalyDetector` uses); the result is fused with our
detector's score point by point (``fuse``): the larger of the two, or our score plus
``weight`` times the discord's, with a hold of our length after each fused alarm during which
only our score counts.

Measured and not taken (see the JSON's ``discord_variants``): with the likelihood fed the
surprise from the warm-up on, as our other terms, and silent until its first estimate from
real surprises, no fusion gains on the fitted categories. A version whose likelihood saw zeros
until twice the warm-up looked better (all 58 about +1.7 standard) only because its first
estimate, made on those zeros, raises an alarm near point 300 of almost every file, and in
two short files that alarm falls in a window (``startup_alarms`` counts them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from prsm.performance.analytics import (
    AnomalySettings,
    NabProfile,
    NabSeries,
    score_corpus,
    window_outcomes,
)
from prsm.performance.analytics._detector import _Likelihood

FloatArray = npt.NDArray[np.float64]


class Discord:
    """``update(value)``: the discord of the subsequence ending at ``value``, or ``None`` until
    a non-overlapping neighbour exists (``2 * length - 1`` values)."""

    __slots__ = ("_buf", "_count", "_dist", "_lags", "_length", "_pad", "_pos")

    _SLACK = 4096

    def __init__(self, length: int, lags: int) -> None:
        if not 1 <= length <= lags:
            raise ValueError(f"need 1 <= length <= lags, got {length}, {lags}")
        self._length, self._lags = length, lags
        self._pad = lags + length + 1  # zeros before the first value keep every slice in range
        self._buf = np.zeros(self._pad + self._SLACK)
        self._pos = self._pad - 1  # index of the newest value
        self._dist = np.zeros(lags)  # squared distance at lag L in [L - 1]
        self._count = 0

    def update(self, v: float) -> float | None:
        m, lags, buf = self._length, self._lags, self._buf
        self._count += 1
        p = self._pos + 1
        if p == len(buf):  # compact, and resum exactly so that rounding cannot build up
            buf[: self._pad] = buf[p - self._pad : p]
            p = self._pad
            now = buf[p - m : p]
            earlier = np.lib.stride_tricks.sliding_window_view(buf[p - m - lags : p - 1], m)
            self._dist = ((earlier - now) ** 2).sum(axis=1)[::-1].copy()
        self._pos = p
        buf[p] = v
        add = v - buf[p - 1 : p - lags - 1 : -1]
        sub = buf[p - m] - buf[p - m - 1 : p - m - lags - 1 : -1]
        self._dist += add * add - sub * sub
        top = min(self._count - m, lags)  # lags whose subsequence lies wholly in the data
        if top < m:
            return None
        return math.sqrt(max(float(self._dist[m - 1 : top].min()), 0.0) / m)


def discord_scores(
    values: FloatArray, *, length: int, lags: int, scale: float, feed_from: int, mute_until: int
) -> FloatArray:
    """The discord's anomaly-likelihood score a point (NAB's log scale): its likelihood is fed
    the squashed surprise from point ``feed_from`` on (zeros before), and scores before
    ``mute_until`` are reported as 0."""
    disc = Discord(length, lags)
    lik = _Likelihood(AnomalySettings())
    mean: float | None = None
    out = np.zeros(len(values))
    for i, v in enumerate(values.tolist()):
        d = disc.update(v)
        raw = 0.0
        if d is not None and mean is not None:
            raw = 1.0 - math.exp(-d / (mean + 1e-9 + 1e-6 * abs(v)) / scale)
            mean += 0.01 * (d - mean)
        elif d is not None:
            mean = d
        score = lik.update(raw if i >= feed_from else 0.0, i)
        out[i] = score if i >= mute_until else 0.0
    return out


def fuse(
    ours: FloatArray, disc: FloatArray, *, weight: float | None, hold: int, hold_threshold: float
) -> FloatArray:
    """Our score fused with the discord's: the larger (``weight`` None) or ``ours + weight *
    disc`` (capped at 1); for ``hold`` points after a fused score of ``hold_threshold`` or more
    only our score counts."""
    out = np.empty(len(ours))
    left = 0
    for i, (a, d) in enumerate(zip(ours.tolist(), disc.tolist(), strict=True)):
        if left > 0:
            left -= 1
            out[i] = a
            continue
        f = max(a, d) if weight is None else min(1.0, a + weight * d)
        out[i] = f
        if f >= hold_threshold:
            left = hold
    return out


def startup_alarms(disc: dict[str, FloatArray], threshold: float) -> dict[str, float]:
    """Files whose discord score alone reaches ``threshold`` within points 300..399 (the first
    likelihood estimate's span), against the mean over the seven later 100-point spans."""

    def files(lo: int) -> int:
        return sum(1 for d in disc.values() if (d[lo : lo + 100] >= threshold).any())

    return {
        "files_300_399": files(300),
        "files_per_later_span": round(float(np.mean([files(k) for k in range(500, 1200, 100)])), 1),
    }


@dataclass(frozen=True, slots=True)
class Variant:
    """One fusion measured: the discord's squashing scale, where its likelihood is fed from and
    muted until (``discord_scores``), and the fusion weight (None: the larger of the two)."""

    scale: float
    feed_from: int
    mute_until: int
    weight: float | None


# Chosen on the fitted categories only, each the best of its kind there (length 16, lags 500;
# scale 1.0, 1.5 or 3.0; the larger of the two, or weight 0.2, 0.3 or 0.5); our warm-up is 150.
VARIANTS = {
    "ours + discord, larger of the two": Variant(1.0, 150, 400, None),
    "ours + 0.2 x discord": Variant(1.5, 150, 400, 0.2),
    "ours + discord, larger, start-up not muted (artefact)": Variant(1.0, 300, 0, None),
}


def variant_scores(
    series: Sequence[NabSeries], ours: Mapping[str, FloatArray]
) -> tuple[dict[str, dict[str, FloatArray]], dict[str, dict[str, float]]]:
    """Each variant's fused scores a file, and each distinct discord's ``startup_alarms``."""
    settings = AnomalySettings()
    cache: dict[tuple[float, int, int], dict[str, FloatArray]] = {}
    fused: dict[str, dict[str, FloatArray]] = {}
    startup: dict[str, dict[str, float]] = {}
    for label, v in VARIANTS.items():
        key = (v.scale, v.feed_from, v.mute_until)
        if key not in cache:
            cache[key] = {
                s.name: discord_scores(
                    s.values,
                    length=16,
                    lags=500,
                    scale=v.scale,
                    feed_from=v.feed_from,
                    mute_until=v.mute_until,
                )
                for s in series
            }
            startup[label] = startup_alarms(cache[key], settings.hold_threshold)
        fused[label] = {
            name: fuse(
                ours[name],
                d,
                weight=v.weight,
                hold=settings.hold,
                hold_threshold=settings.hold_threshold,
            )
            for name, d in cache[key].items()
        }
    return fused, startup


def windows_only_variant(
    series: Sequence[NabSeries],
    ours: Mapping[str, FloatArray],
    variant: Mapping[str, FloatArray],
    profile: NabProfile,
) -> list[dict[str, Any]]:
    """The windows the variant catches and ours misses (each at its corpus threshold): file,
    window, its span and the variant's first detection (index)."""
    sides = []
    for scores in (ours, variant):
        thr = score_corpus(series, scores, profile).threshold
        sides.append(window_outcomes(series, scores, profile, thr)[0])
    return [
        {"window": f"{a.series}#{a.window}", "span": [a.start, a.end], "detected_at": b.detected_at}
        for a, b in zip(*sides, strict=True)
        if a.detected_at is None and b.detected_at is not None
    ]
