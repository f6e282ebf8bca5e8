"""The metrics history: what a store holds, how it is queried, and the in-memory store.

A **sample** is one value of one series (a metric name plus labels) at one time. A store keeps
samples at several resolutions (:class:`~._settings.HistoryTier`: 1 s for an hour, 1 min for a
week, 1 h for a year by default): each sample is folded into one bucket of every tier (count,
sum, min, max and the last value), and each tier forgets buckets older than its retention
when :meth:`MetricsStore.compact` runs. So a store never grows past
``series × Σ retention / step`` buckets.

Queries (:meth:`MetricsStore.query`) name a metric, optionally labels (every given label must
match; ``exact=True``: and no other label), a time range and a step; they answer from the
finest tier that still covers the range, aggregating buckets to the step. This is the API the
dashboard, the alert rules, analytics and the scaler read::

    series = store.query("application.request_rate", since=now - 3600, until=now, step=60)
    for s in series:
        print(s.labels, s.points[-1])  # (bucket start, value)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ._settings import DEFAULT_TIERS, HistoryTier, check_tiers

if TYPE_CHECKING:
    from ._streak import Streak

#: How buckets are combined into a query's step.
AGGREGATIONS: tuple[str, ...] = ("avg", "sum", "min", "max", "last", "count")
#: What :meth:`MetricsStore.aggregate` computes over a range.
AGGREGATES: tuple[str, ...] = ("sum", "count", "min", "max", "avg")

Labels = tuple[tuple[str, str], ...]


def labels_key(labels: Mapping[str, str] | None) -> Labels:
    """Labels as a sorted tuple of pairs (how stores key a series)."""
    if not labels:
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in labels.items()))


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of the series (``metric``, ``labels``) at ``ts`` (Unix seconds)."""

    metric: str
    labels: Labels
    ts: float
    value: float


@dataclass(slots=True)
class Series:
    """One series' answer to a query: ``points`` are ``(bucket start, value)``, oldest first,
    ``step`` seconds apart (buckets without samples are left out)."""

    metric: str
    labels: dict[str, str]
    step: float
    points: list[tuple[float, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "labels": self.labels,
            "step": self.step,
            "points": [[t, v] for t, v in self.points],
        }


@runtime_checkable
class MetricsStore(Protocol):
    """Where the monitor keeps history (:class:`MemoryMetricsStore`, :class:`~._sqlite.
    SQLiteMetricsStore`). Methods block: call them off the event loop (the monitor does)."""

    tiers: tuple[HistoryTier, ...]

    def write(self, samples: Iterable[Sample]) -> int:
        """Fold ``samples`` into every tier; returns how many were kept (a new series past
        the store's series limit is dropped and counted in :meth:`stats`)."""
        ...

    def query(
        self,
        metric: str,
        labels: Mapping[str, str] | None = None,
        *,
        since: float,
        until: float,
        step: float | None = None,
        agg: str = "avg",
        exact: bool = False,
        now: float | None = None,
    ) -> list[Series]:
        """Every matching series' points in ``[since, until]``, ``step`` apart (default and
        minimum: the step of the finest tier still holding ``since`` as of ``now``, default
        ``until``), buckets combined by ``agg`` (one of :data:`AGGREGATIONS`)."""
        ...

    def streak(
        self,
        metric: str,
        labels: Mapping[str, str] | None = None,
        *,
        since: float,
        until: float,
        agg: str,
        condition: str,
        threshold: float,
        now: float | None = None,
    ) -> list[Streak]:
        """Each matching series' :class:`~._streak.Streak` over ``[since, until]`` (at the
        step ``query`` would use, buckets valued by ``agg``): its latest point and since when
        ``value <condition> threshold`` has held without a break (what an alert rule asks)."""
        ...

    def aggregate(
        self,
        metric: str,
        labels: Mapping[str, str] | None = None,
        *,
        since: float,
        until: float,
        agg: str = "sum",
        now: float | None = None,
    ) -> float | None:
        """One figure over ``[since, until]`` and every matching series (e.g. the requests
        of the last hour, all gateways together): ``sum``, ``count``, ``min``, ``max`` or
        ``avg`` of the samples, from the finest tier still holding ``since`` (buckets that
        start in the range); ``None`` when there is no sample."""
        ...

    def metrics(self) -> list[str]:
        """The metric names held, sorted."""
        ...

    def label_sets(self, metric: str) -> list[dict[str, str]]:
        """The label sets of ``metric``'s series."""
        ...

    def compact(self, now: float) -> None:
        """Forget each tier's buckets older than its retention, and series with none left."""
        ...

    def stats(self) -> dict[str, Any]:
        """Series, buckets per tier, dropped samples."""
        ...

    def close(self) -> None: ...


class QueryPlan:
    """How a query is answered: which tier, at which step (shared by the stores)."""

    __slots__ = ("step", "tier")

    def __init__(
        self,
        tiers: Sequence[HistoryTier],
        since: float,
        until: float,
        *,
        step: float | None,
        agg: str,
        now: float | None,
    ) -> None:
        if agg not in AGGREGATIONS:
            raise ValueError(f"agg: must be one of {', '.join(AGGREGATIONS)}, got {agg!r}")
        if not (math.isfinite(since) and math.isfinite(until)) or until < since:
            raise ValueError(f"time range: need finite since <= until, got [{since}, {until}]")
        if step is not None and not (math.isfinite(step) and step > 0):
            raise ValueError(f"step: must be > 0 seconds, got {step!r}")
        ref = until if now is None else now
        covering = [t for t in tiers if since >= ref - t.retention]
        if step is not None:
            fine_enough = [t for t in covering if t.step <= step]
            tier = fine_enough[-1] if fine_enough else (covering[0] if covering else tiers[-1])
        else:
            tier = covering[0] if covering else tiers[-1]
        self.tier = tier
        want = tier.step if step is None else max(step, tier.step)
        # a whole number of the tier's buckets per point
        self.step = tier.step * max(1, round(want / tier.step))


def bucket(ts: float, step: float) -> float:
    """The start of the ``step``-wide bucket holding ``ts``."""
    return math.floor(ts / step) * step


def matches(have: Labels, want: Labels, exact: bool) -> bool:
    """Whether a series' labels ``have`` satisfy the query's ``want``."""
    if exact:
        return have == want
    if not want:
        return True
    d = dict(have)
    return all(d.get(k) == v for k, v in want)


class Bucket:
    """Count, sum, min, max and the last value (with its time) of the samples in a bucket."""

    __slots__ = ("hi", "last", "last_ts", "lo", "n", "total")

    def __init__(self, ts: float, value: float) -> None:
        self.n = 1
        self.total = value
        self.lo = value
        self.hi = value
        self.last_ts = ts
        self.last = value

    def add(self, ts: float, value: float) -> None:
        self.n += 1
        self.total += value
        self.lo = min(self.lo, value)
        self.hi = max(self.hi, value)
        if ts >= self.last_ts:
            self.last_ts = ts
            self.last = value

    def merge(self, other: Bucket) -> None:
        self.n += other.n
        self.total += other.total
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)
        if other.last_ts >= self.last_ts:
            self.last_ts = other.last_ts
            self.last = other.last

    def value(self, agg: str) -> float:
        if agg == "avg":
            return self.total / self.n
        if agg == "sum":
            return self.total
        if agg == "min":
            return self.lo
        if agg == "max":
            return self.hi
        if agg == "last":
            return self.last
        return float(self.n)


class MemoryMetricsStore:
    """The in-memory :class:`MetricsStore` (tests, library use without a data directory): the
    same tiers, retention and queries as the SQLite store, nothing on disk."""

    def __init__(
        self, tiers: tuple[HistoryTier, ...] = DEFAULT_TIERS, *, max_series: int = 5000
    ) -> None:
        check_tiers(tiers)
        self.tiers = tiers
        self.max_series = max_series
        self.dropped = 0
        # (metric, labels) -> one {bucket start: Bucket} per tier
        self._series: dict[tuple[str, Labels], list[dict[float, Bucket]]] = {}

    def write(self, samples: Iterable[Sample]) -> int:
        kept = 0
        for s in samples:
            if not math.isfinite(s.value):
                self.dropped += 1
                continue
            key = (s.metric, s.labels)
            tiers = self._series.get(key)
            if tiers is None:
                if len(self._series) >= self.max_series:
                    self.dropped += 1
                    continue
                tiers = self._series[key] = [{} for _ in self.tiers]
            for tier, buckets in zip(self.tiers, tiers, strict=True):
                b = bucket(s.ts, tier.step)
                found = buckets.get(b)
                if found is None:
                    buckets[b] = Bucket(s.ts, s.value)
                else:
                    found.add(s.ts, s.value)
            kept += 1
        return kept

    def query(
        self,
        metric: str,
        labels: Mapping[str, str] | None = None,
        *,
        since: float,
        until: float,
        step: float | None = None,
        agg: str = "avg",
        exact: bool = False,
        now: float | None = None,
    ) -> list[Series]:
        plan = QueryPlan(self.tiers, since, until, step=step, agg=agg, now=now)
        index = self.tiers.index(plan.tier)
        want = labels_key(labels)
        out = []
        for (name, have), tiers in sorted(self._series.items()):
            if name != metric or not matches(have, want, exact):
                continue
            merged: dict[float, Bucket] = {}
            for start, b in sorted(tiers[index].items()):
                if start < bucket(since, plan.tier.step) or start > until:
                    continue
                key = bucket(start, plan.step)
                found = merged.get(key)
                if found is None:
                    merged[key] = copy = Bucket(b.last_ts, b.last)
                    copy.n, copy.total, copy.lo, copy.hi = b.n, b.total, b.lo, b.hi
                else:
                    found.merge(b)
            points = [(t, b.value(agg)) for t, b in sorted(merged.items())]
            if points:
                out.append(Series(metric, dict(have), plan.step, points))
        return out

    def streak(
        self,
        metric: str,
        labels: Mapping[str, str] | None = None,
        *,
        since: float,
        until: float,
        agg: str,
        condition: str,
        threshold: float,
        now: float | None = None,
    ) -> list[Streak]:
        from ._streak import series_streak

        found = self.query(metric, labels, since=since, until=until, agg=agg, now=now)
        streaks = (series_streak(s, condition, threshold) for s in found)
        return [s for s in streaks if s is not None]

    def aggregate(
        self,
        metric: str,
        labels: Mapping[str, str] | None = None,
        *,
        since: float,
        until: float,
        agg: str = "sum",
        now: float | None = None,
    ) -> float | None:
        if agg not in AGGREGATES:
            raise ValueError(f"agg: must be one of {', '.join(AGGREGATES)}, got {agg!r}")
        plan = QueryPlan(self.tiers, since, until, step=None, agg="sum", now=now)
        index = self.tiers.index(plan.tier)
        want = labels_key(labels)
        total: Bucket | None = None
        for (name, have), tiers in self._series.items():
            if name != metric or not matches(have, want, False):
                continue
            for start, b in tiers[index].items():
                if since <= start <= until:
                    if total is None:
                        total = Bucket(b.last_ts, b.last)
                        total.n, total.total, total.lo, total.hi = b.n, b.total, b.lo, b.hi
                    else:
                        total.merge(b)
        return None if total is None else total.value(agg)

    def metrics(self) -> list[str]:
        return sorted({name for name, _ in self._series})

    def label_sets(self, metric: str) -> list[dict[str, str]]:
        return [dict(labels) for name, labels in sorted(self._series) if name == metric]

    def compact(self, now: float) -> None:
        for key, tiers in list(self._series.items()):
            for tier, buckets in zip(self.tiers, tiers, strict=True):
                horizon = now - tier.retention
                for start in [t for t in buckets if t + tier.step <= horizon]:
                    del buckets[start]
            if not any(tiers):
                del self._series[key]

    def stats(self) -> dict[str, Any]:
        return {
            "backend": "memory",
            "series": len(self._series),
            "buckets": {
                f"{tier.step:g}s": sum(len(t[i]) for t in self._series.values())
                for i, tier in enumerate(self.tiers)
            },
            "dropped": self.dropped,
        }

    def close(self) -> None:
        """Nothing to release: the samples stay readable (a test can look after closing)."""
