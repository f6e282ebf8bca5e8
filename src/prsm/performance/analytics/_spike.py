"""The *spike record* of :class:`~._detector.AnomalyDetector`: a raw surprise larger than every
one of the last ``window`` points' by a factor ``factor``.

The anomaly likelihood averages each surprise over ``average_window`` points, which dilutes a
lone spike; the record looks at the raw distances instead (from the slow and from the fast
exponentially weighted means, in their mean absolute deviations), calibrated on the series
itself: a distance is only news when it beats the largest of a long stretch. Each measure keeps
a falling deque of (index, value) (the running maximum over the window): O(1) amortised.

The detector reports a record as a weak alarm (``spike_score``, below the default threshold)
that starts a hold like any alarm: chosen on NAB's fitting categories, where its holds suppress
later false alarms, and a lower threshold (NAB's reward-low-FN profile on held-out series)
catches the windows it marks.
"""

from __future__ import annotations

from collections import deque


class SpikeRecord:
    """``update(i, distances) -> bool``: whether any distance beats ``factor`` times the
    largest of its own last ``window`` values (indices ``> i - window``), once ``i >= start``."""

    __slots__ = ("_factor", "_maxima", "_start", "_window")

    def __init__(self, window: int, factor: float, start: int, measures: int) -> None:
        self._window = window
        self._factor = factor
        self._start = start
        self._maxima: tuple[deque[tuple[int, float]], ...] = tuple(deque() for _ in range(measures))

    def update(self, i: int, *distances: float) -> bool:
        """Remember ``distances`` (one a measure) at index ``i``; ``True`` on a record."""
        record = False
        cutoff = i - self._window
        for dq, z in zip(self._maxima, distances, strict=True):
            while dq and dq[0][0] <= cutoff:
                dq.popleft()
            if dq and i >= self._start and z > self._factor * dq[0][1]:
                record = True
            while dq and dq[-1][1] <= z:
                dq.pop()
            dq.append((i, z))
        return record
