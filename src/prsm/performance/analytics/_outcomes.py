"""Where a detector's NAB points go: each labelled window's outcome and each file's false
positives at a given threshold (what :func:`score_corpus` sums, taken apart).

A missed window is *outranked* when the detector scored higher elsewhere in the same file: the
number of separate out-of-window events (runs of points at or above the window's best score,
a new event after a gap wider than the window) says whether a lower threshold could catch it
without paying for false positives first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._nab import NabProfile, NabSeries, probation_length, series_scores, sweep_scores


@dataclass(frozen=True, slots=True)
class WindowOutcome:
    """One labelled window of one file at a threshold (indices inclusive, into the file)."""

    series: str
    window: int
    start: int
    end: int
    detected_at: int | None
    """The first detection in the window's scored part; None when it was missed."""
    value: float
    """What the window adds to the raw score: the detection's weight, or ``-fn_weight``."""
    best_score: float
    """The detector's highest score in the window's scored part."""
    outranked_by: int
    """Separate out-of-window events (after probation) scoring at least ``best_score``."""


@dataclass(frozen=True, slots=True)
class FileFalsePositives:
    """False positives of one file at a threshold: how many and what they cost (>= 0)."""

    series: str
    count: int
    cost: float


def window_outcomes(
    series: Sequence[NabSeries],
    scores: Mapping[str, npt.ArrayLike],
    profile: NabProfile,
    threshold: float,
) -> tuple[list[WindowOutcome], list[FileFalsePositives]]:
    """Every scored window's outcome and every file's false positives at ``threshold``
    (scores ``>=`` it detect), under ``profile``'s weights, as NAB's sweeper counts them."""
    windows: list[WindowOutcome] = []
    fps: list[FileFalsePositives] = []
    for s in series:
        a = series_scores(s, scores)
        n = len(s.values)
        p = probation_length(n)
        sweep = sweep_scores(n, s.windows, profile)
        inside = np.zeros(n, dtype=bool)
        for lo, hi in s.windows:
            inside[lo : hi + 1] = True
        inside[:p] = True  # probation: neither window nor false positive
        fp_idx = np.flatnonzero((a >= threshold) & ~inside)
        fps.append(FileFalsePositives(s.name, int(fp_idx.size), float(-sweep[fp_idx].sum())))
        for k, (lo, hi) in enumerate(s.windows):
            if hi < p:
                continue
            first = max(lo, p)
            part = a[first : hi + 1]
            hits = np.flatnonzero(part >= threshold)
            at = first + int(hits[0]) if hits.size else None
            best = float(part.max())
            windows.append(
                WindowOutcome(
                    series=s.name,
                    window=k,
                    start=lo,
                    end=hi,
                    detected_at=at,
                    value=float(sweep[at]) if at is not None else -profile.fn_weight,
                    best_score=best,
                    outranked_by=_events(np.flatnonzero((a >= best) & ~inside), hi - lo + 1),
                )
            )
    return windows, fps


def _events(idx: npt.NDArray[np.intp], gap: int) -> int:
    """Runs in sorted indices ``idx``: a new run starts after a gap wider than ``gap``."""
    if idx.size == 0:
        return 0
    return int(np.count_nonzero(np.diff(idx) > gap)) + 1
