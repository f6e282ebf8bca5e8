"""The *change record* of :class:`~._detector.AnomalyDetector`: a two-sided CUSUM (Page 1954) of
the value's deviation from an exponentially weighted mean, reported when it beats every one of
its own last ``window`` values by a factor ``factor``.

The detector's other measures look at one point's distance, or at a 20-point average of a
squashed distance, against a mean that learns the new level within a few dozen points: a small
shift of the level, a change of slope or a rise of the spread that persists is learned away
before any one point stands out. The CUSUM accumulates the evidence instead: each point adds its
signed deviation (in mean absolute deviations of the same mean) less a ``drift`` allowance, and
the sum restarts from zero when it turns negative, so it grows for as long as the values stay on
one side of the mean. Its scale differs from series to series (a daily cycle alone makes long
one-sided runs), so it is calibrated on the series itself, like the spike record: only a sum
larger than the largest of the last ``window`` points' is news. O(1) amortised a point.

The detector reports a record at ``change_score`` (by default a full alarm) unless a hold is on,
and restarts the sums whenever a hold starts (one incident, one alarm). As a weak alarm below the
threshold (like the spike record) it loses on NAB's fitting categories (likely because its holds,
started early in an incident, suppress the alarms that would have caught it; not analysed).
"""

from __future__ import annotations

from ._spike import SpikeRecord


class ChangeRecord:
    """``update(i, value) -> bool``: whether the CUSUM of ``value``'s deviation from its EW mean
    (rate ``alpha``) beats ``factor`` times the largest of its last ``window`` values; the value
    is then learned. The sums start at point ``begin`` (before it the mean and the deviation
    only learn, so the start-up's tiny deviations do not set the scale) and records at
    ``start``."""

    __slots__ = ("_alpha", "_begin", "_drift", "_mad", "_mean", "_neg", "_pos", "_record")

    def __init__(
        self, window: int, factor: float, drift: float, alpha: float, *, begin: int, start: int
    ) -> None:
        self._alpha = alpha
        self._begin = begin
        self._drift = drift
        self._mean: float | None = None
        self._mad = 0.0
        self._pos = 0.0
        self._neg = 0.0
        self._record = SpikeRecord(window, factor, start, 1)

    def update(self, i: int, value: float) -> bool:
        """Add ``value`` (point ``i``) to the sums; ``True`` on a record."""
        mean = self._mean
        if mean is None:
            self._mean = value
            return False
        dev = value - mean
        z = dev / (self._mad + 1e-9 + 1e-4 * abs(mean))
        a = self._alpha
        self._mean = mean + a * dev
        self._mad += a * (abs(dev) - self._mad)
        if i < self._begin:
            return False
        self._pos = max(0.0, self._pos + z - self._drift)
        self._neg = max(0.0, self._neg - z - self._drift)
        return self._record.update(i, max(self._pos, self._neg))

    def restart(self) -> None:
        """Forget the accumulated sums (the detector calls this when an alarm starts a hold)."""
        self._pos = self._neg = 0.0
