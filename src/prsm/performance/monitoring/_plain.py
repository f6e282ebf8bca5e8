"""Plain metric children: Python counters and histograms turned into Prometheus families only
when the registry is scraped.

Recording one costs an attribute add (a counter) or two floats appended to the registry's
:class:`~._batch.Batch` (a histogram: the batch adds them up with numpy when read, or at its
cap) instead of prometheus_client's locked value objects. They are written from the event
loop's thread (the gateway, the orchestrator and the recorder); a histogram's ``counts``,
``sum`` and ``count`` add up the pending observations before they answer, so every reader
(the exposition, the views, the monitor's deltas) sees all that was recorded before it read.
A :class:`PlainFamily` is created and registered by
:meth:`MetricsRegistry.plain <prsm.performance.monitoring.MetricsRegistry.plain>` (or
:func:`plain_family`), which keeps it in that registry instance: there is no module-global
table of families.

A histogram may also be exported under a second name with a subset of its bounds
(:class:`HistogramView`): the same observations seen through coarser buckets, e.g. the
OpenTelemetry GenAI semantic-convention bucket boundaries, at no cost per request. Because
every exported bound is one of the recorded bounds, the exported counts are exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import pairwise
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ._batch import Batch

#: Latency buckets (seconds) fitted to a gateway: 50 µs to 60 s.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip

KINDS = ("counter", "histogram")


def le_label(bound: float) -> str:
    """A bucket bound as prometheus_client writes its ``le`` label."""
    return repr(float(bound))


class PlainCounter:
    """A counter child: ``inc()`` adds to a float."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class PlainHistogram:
    """A histogram child: per-bucket counts (not cumulative until scraped) and the sum.

    ``observe`` appends to its registry's :class:`~._batch.Batch`; reading ``counts``,
    ``sum`` or ``count`` adds up what is pending first, so a reader always sees every
    observation made before it read."""

    __slots__ = ("_counts", "_sum", "batch", "bounds", "limit", "rows", "slot")

    def __init__(
        self, bounds: tuple[float, ...], batch: Batch | None = None, name: str = ""
    ) -> None:
        self.bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last one: +Inf
        self._sum = 0.0
        self.batch = batch = batch if batch is not None else Batch()
        self.rows = batch.rows
        self.limit = batch.limit
        self.slot = batch.add(self, name)

    def observe(self, value: float) -> None:
        rows = self.rows
        rows += (self.slot, value)
        if len(rows) >= self.limit:
            self.batch.flush()

    @property
    def counts(self) -> list[int]:
        """Observations per bucket (``le``: value <= bound; the last: +Inf)."""
        if self.rows:
            self.batch.flush()
        return self._counts

    @property
    def sum(self) -> float:
        if self.rows:
            self.batch.flush()
        return self._sum

    @property
    def count(self) -> int:
        return sum(self.counts)


def check_bounds(bounds: Sequence[float], what: str) -> tuple[float, ...]:
    """``bounds`` as a strictly increasing tuple of finite floats, or :class:`ValueError`."""
    out = tuple(float(b) for b in bounds)
    if not out:
        raise ValueError(f"{what}: needs at least one bucket bound")
    if any(b >= c for b, c in pairwise(out)):
        raise ValueError(f"{what}: bucket bounds must increase strictly, got {list(out)}")
    if out[-1] == float("inf"):
        raise ValueError(f"{what}: +Inf is implicit; leave it out of the bounds")
    return out


class PlainFamily(Collector):
    """A labelled family of :class:`PlainCounter` or :class:`PlainHistogram` children,
    exposed as a Prometheus counter or histogram when its registry is collected."""

    def __init__(
        self,
        kind: str,
        name: str,
        doc: str,
        labelnames: tuple[str, ...],
        bounds: tuple[float, ...] = LATENCY_BUCKETS,
        *,
        batch: Batch | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"{name}: kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.name = name
        self.doc = doc
        self.labelnames = labelnames
        self.bounds = check_bounds(bounds, name) if kind == "histogram" else bounds
        self.children: dict[tuple[str, ...], Any] = {}
        #: where the histogram children's observations wait (the registry's, shared)
        self.batch = batch if batch is not None else Batch()
        self._le = [le_label(b) for b in self.bounds] + ["+Inf"]  # as prometheus_client

    def labels(self, *values: str) -> Any:
        """The child for these label values (created at first use)."""
        child = self.children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
            if self.kind == "counter":
                child = PlainCounter()
            else:
                child = PlainHistogram(self.bounds, self.batch, f"{self.name}{list(values)}")
            self.children[values] = child
        return child

    def inc(self, amount: float = 1.0) -> None:
        """For a family without labels."""
        self.labels().inc(amount)

    def observe(self, value: float) -> None:
        """For a family without labels."""
        self.labels().observe(value)

    def remove(self, *values: str) -> None:
        child = self.children.pop(values, None)
        if isinstance(child, PlainHistogram):
            child.batch.release(child)

    def collect(self) -> Iterator[Metric]:
        labels = list(self.labelnames)
        if self.kind == "counter":
            counter = CounterMetricFamily(self.name, self.doc, labels=labels)
            for values, child in list(self.children.items()):
                counter.add_metric(list(values), child.value)
            yield counter
            return
        hist = HistogramMetricFamily(self.name, self.doc, labels=labels)
        for values, child in list(self.children.items()):
            hist.add_metric(list(values), cumulative(self._le, child.counts), child.sum)
        yield hist


def cumulative(le: Sequence[str], counts: Sequence[int]) -> list[tuple[str, float]]:
    """``(le, cumulative count)`` pairs from per-bucket counts."""
    total = 0
    out = []
    for bound, count in zip(le, counts, strict=True):
        total += count
        out.append((bound, float(total)))
    return out


class HistogramView(Collector):
    """A plain histogram family exported again under another name, with a subset of its bounds
    and its labels renamed (and optionally mapped), e.g. ``prsm_request_duration_seconds``
    seen as the GenAI semantic convention's ``gen_ai_server_request_duration_seconds``.

    ``labels`` maps each exported label to its value: a function of the source child's label
    values. Children whose mapped label sets coincide are added together.
    """

    def __init__(
        self,
        source: PlainFamily,
        name: str,
        doc: str,
        bounds: Sequence[float],
        labels: Mapping[str, Callable[[tuple[str, ...]], str]],
    ) -> None:
        if source.kind != "histogram":
            raise ValueError(f"{name}: a view needs a histogram family, not {source.kind}")
        want = check_bounds(bounds, name)
        missing = [b for b in want if b not in source.bounds]
        if missing:
            raise ValueError(
                f"{name}: bounds {missing} are not among {source.name}'s; a view can only "
                "merge buckets"
            )
        self.source = source
        self.name = name
        self.doc = doc
        self.bounds = want
        self.labels = labels
        # the source bucket index at which each exported bucket ends (inclusive)
        self._ends = [source.bounds.index(b) for b in want]
        self._le = [le_label(b) for b in want] + ["+Inf"]

    def merged(self, counts: Sequence[int]) -> list[int]:
        """Per-bucket counts at this view's bounds from the source's per-bucket counts."""
        out = []
        start = 0
        for end in self._ends:
            out.append(sum(counts[start : end + 1]))
            start = end + 1
        out.append(sum(counts[start:]))
        return out

    def collect(self) -> Iterator[Metric]:
        names = list(self.labels)
        funcs = list(self.labels.values())
        groups: dict[tuple[str, ...], tuple[list[int], float]] = {}
        for values, child in list(self.source.children.items()):
            key = tuple(f(values) for f in funcs)
            counts = self.merged(child.counts)
            found = groups.get(key)
            if found is None:
                groups[key] = (counts, child.sum)
            else:
                added = [a + b for a, b in zip(found[0], counts, strict=True)]
                groups[key] = (added, found[1] + child.sum)
        hist = HistogramMetricFamily(self.name, self.doc, labels=names)
        for key, (counts, observed) in groups.items():
            hist.add_metric(list(key), cumulative(self._le, counts), observed)
        yield hist
