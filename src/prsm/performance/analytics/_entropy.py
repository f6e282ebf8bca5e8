"""The relative-entropy surprise of :class:`~._detector.AnomalyDetector`: how far the
distribution of the last few values has moved from that of the values just before them.

The idea is that of NAB's "Relative Entropy" detector (Wang et al., "Statistical techniques
for online anomaly detection in data centers", IFIP/IEEE IM 2011): compare the histogram of a
short recent window with a reference histogram, by their Kullback-Leibler divergence. Here it
is one more surprise fed to an anomaly likelihood (its own calibration), not a detector with a
chi-squared threshold; it sees changes in how values are spread (a burst of values in bins the
reference rarely visits, a series that stops varying) that distance-from-a-mean measures learn
away or never see.

Each value is binned once, on arrival, into ``bins`` equal-width bins over the range of the
values seen before it (the detector's envelope), and stays in that bin as it moves from the
recent window to the reference and out: O(bins) a point.
"""

from __future__ import annotations

import math
from collections import deque


class RelativeEntropy:
    """``update(value, lo, hi)``: KL divergence (nats) of the last ``window`` values' histogram
    from that of the ``reference`` values before them; ``None`` until half the reference is
    filled (``ready`` counts the divergences given so far)."""

    __slots__ = (
        "_bins",
        "_cur",
        "_cur_counts",
        "_ref",
        "_ref_counts",
        "_reference",
        "_window",
        "ready",
    )

    def __init__(self, window: int, reference: int, bins: int) -> None:
        self._window = window
        self._reference = reference
        self._bins = bins
        self._cur: deque[int] = deque()
        self._ref: deque[int] = deque()
        self._cur_counts = [0] * bins
        self._ref_counts = [0] * bins
        self.ready = 0

    def update(self, v: float, lo: float, hi: float) -> float | None:
        """Bin ``v`` over ``[lo, hi]`` (the range seen before it), slide the windows, and return
        the divergence of the recent histogram from the reference (add-one-half smoothed)."""
        bins = self._bins
        span = hi - lo
        b = int((v - lo) / span * bins) if span > 0 else 0
        b = bins - 1 if b >= bins else (b if b > 0 else 0)
        cur, ref, cc, rc = self._cur, self._ref, self._cur_counts, self._ref_counts
        cur.append(b)
        cc[b] += 1
        if len(cur) > self._window:
            old = cur.popleft()
            cc[old] -= 1
            ref.append(old)
            rc[old] += 1
            if len(ref) > self._reference:
                rc[ref.popleft()] -= 1
        if 2 * len(ref) < self._reference:
            return None
        self.ready += 1
        n = len(cur)
        m = len(ref) + 0.5 * bins
        kl = 0.0
        for c, r in zip(cc, rc, strict=True):
            if c:
                p = c / n
                kl += p * math.log(p * m / (r + 0.5))
        return kl
