"""What happened between two collections, read from cumulative plain families.

The recorder only ever adds; the collector keeps each child's previous counts and takes the
difference, so a collection costs O(children), nothing per request. Percentiles are
interpolated inside the histogram bucket that holds them, as Prometheus'
``histogram_quantile`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Key = tuple[str, ...]


class HistDelta:
    """Per-bucket counts and the sum observed in one interval (possibly several children
    added together)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)

    def add(self, other: HistDelta) -> None:
        if other.bounds != self.bounds:
            raise ValueError("cannot add histograms with different bounds")
        for i, c in enumerate(other.counts):
            self.counts[i] += c
        self.sum += other.sum

    def at_most(self, bound: float) -> int:
        """Observations ``<= bound`` (``bound`` must be one of the bounds)."""
        return sum(self.counts[: self.bounds.index(bound) + 1])

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (0–1), interpolated within its bucket; ``None`` when empty."""
        total = self.count
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for i, c in enumerate(self.counts):
            if c and seen + c >= rank:
                if i == len(self.bounds):  # the +Inf bucket: the highest finite bound
                    return self.bounds[-1]
                lo = self.bounds[i - 1] if i > 0 else 0.0
                hi = self.bounds[i]
                return lo + (hi - lo) * max(0.0, rank - seen) / c
            seen += c
        return self.bounds[-1]

    def mean(self) -> float | None:
        total = self.count
        return self.sum / total if total else None

    def summary(self) -> dict[str, float | int | None]:
        return {
            "count": self.count,
            "mean": self.mean(),
            "p50": self.quantile(0.5),
            "p95": self.quantile(0.95),
            "p99": self.quantile(0.99),
        }


class FamilyDeltas:
    """Remembers one plain family's children between collections."""

    def __init__(self, family: Any) -> None:
        self.family = family
        self.is_histogram = getattr(family, "kind", "") == "histogram"
        self._prev: dict[Key, tuple[list[int], float] | float] = {}

    def histograms(self) -> dict[Key, HistDelta]:
        """Each histogram child's observations since the previous call."""
        out: dict[Key, HistDelta] = {}
        prev = self._prev
        seen = set()
        for key, child in list(self.family.children.items()):
            counts = list(child.counts)
            total = child.sum
            seen.add(key)
            before = prev.get(key)
            prev[key] = (counts, total)
            d = HistDelta(child.bounds)
            if isinstance(before, tuple):
                d.counts = [max(0, a - b) for a, b in zip(counts, before[0], strict=True)]
                d.sum = max(0.0, total - before[1])
            else:
                d.counts = counts
                d.sum = total
            if any(d.counts):
                out[key] = d
        for key in [k for k in prev if k not in seen]:
            del prev[key]
        return out

    def counters(self) -> dict[Key, float]:
        """Each counter child's increase since the previous call."""
        out: dict[Key, float] = {}
        prev = self._prev
        seen = set()
        for key, child in list(self.family.children.items()):
            value = float(child.value)
            seen.add(key)
            before = prev.get(key)
            prev[key] = value
            inc = value - before if isinstance(before, float) else value
            if inc > 0:
                out[key] = inc
        for key in [k for k in prev if k not in seen]:
            del prev[key]
        return out


def merge(deltas: Iterable[HistDelta], bounds: Sequence[float]) -> HistDelta:
    """Several histograms' observations added together."""
    out = HistDelta(tuple(bounds))
    for d in deltas:
        out.add(d)
    return out
