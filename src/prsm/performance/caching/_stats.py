"""Per-tier counters of the exact cache, and their export to Prometheus.

Counting on the hot path is plain integer arithmetic on :class:`TierStats`; a collector
registered once per :class:`~prsm.performance.monitoring.MetricsRegistry` turns the numbers
into metric families when ``/metrics`` is scraped, so an L1 hit pays no Prometheus cost.
Exported families (labels ``cache`` and ``tier``):

- ``prsm_cache_requests_total{result=hit|miss|error|skipped|corrupt}``
- ``prsm_cache_writes_total{result=ok|error|skipped}``
- ``prsm_cache_tier_latency_seconds`` (histogram of get latencies)
- ``prsm_cache_tier_up`` (0 while a failed tier is being skipped)
- ``prsm_cache_l1_entries``, ``prsm_cache_l1_bytes``, ``prsm_cache_evictions_total``
- ``prsm_cache_flights_total{cache, event=leader|follower|refresh|refresh_error}``
"""

from __future__ import annotations

import weakref
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from ..monitoring._registry import LATENCY_BUCKETS, MetricsRegistry

REQUEST_RESULTS = ("hit", "miss", "error", "skipped", "corrupt")
WRITE_RESULTS = ("ok", "error", "skipped")


@dataclass(slots=True)
class TierStats:
    """What one tier did: lookups by result, writes by result, get latencies."""

    hit: int = 0
    miss: int = 0
    error: int = 0
    skipped: int = 0
    corrupt: int = 0
    write_ok: int = 0
    write_error: int = 0
    write_skipped: int = 0
    latency_sum: float = 0.0
    latency_count: int = 0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))

    def observe(self, seconds: float) -> None:
        self.latency_sum += seconds
        self.latency_count += 1
        self.latency_buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def as_dict(self) -> dict[str, Any]:
        looked = self.hit + self.miss + self.corrupt
        return {
            "hits": self.hit,
            "misses": self.miss,
            "errors": self.error,
            "skipped": self.skipped,
            "corrupt": self.corrupt,
            "hit_ratio": self.hit / looked if looked else 0.0,
            "writes": self.write_ok,
            "write_errors": self.write_error,
            "writes_skipped": self.write_skipped,
            "mean_latency_s": self.latency_sum / self.latency_count if self.latency_count else 0.0,
        }


class StatsSource(Protocol):
    """What the collector reads from a cache."""

    name: str

    def metric_snapshot(self) -> dict[str, Any]:
        """``{"tiers": {tier: (TierStats, up)}, "l1": (entries, bytes, evictions) | None,
        "flights": {event: count}}``."""
        ...


class CacheCollector(Collector):
    """Exports every cache registered with it (weakly held, by cache name)."""

    def __init__(self) -> None:
        self.sources: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "prsm_cache_requests",
            "Cache lookups by tier and result",
            labels=["cache", "tier", "result"],
        )
        writes = CounterMetricFamily(
            "prsm_cache_writes",
            "Cache writes by tier and result",
            labels=["cache", "tier", "result"],
        )
        latency = HistogramMetricFamily(
            "prsm_cache_tier_latency_seconds", "Cache get latency by tier", labels=["cache", "tier"]
        )
        up = GaugeMetricFamily(
            "prsm_cache_tier_up", "1 when a tier is in use", labels=["cache", "tier"]
        )
        entries = GaugeMetricFamily("prsm_cache_l1_entries", "L1 entries", labels=["cache"])
        nbytes = GaugeMetricFamily("prsm_cache_l1_bytes", "L1 bytes", labels=["cache"])
        evictions = CounterMetricFamily("prsm_cache_evictions", "L1 evictions", labels=["cache"])
        flights = CounterMetricFamily(
            "prsm_cache_flights", "Single-flight computations", labels=["cache", "event"]
        )
        for name, source in list(self.sources.items()):
            snap = source.metric_snapshot()
            for tier, (st, is_up) in snap["tiers"].items():
                for result in REQUEST_RESULTS:
                    requests.add_metric([name, tier, result], getattr(st, result))
                for result in WRITE_RESULTS:
                    writes.add_metric([name, tier, result], getattr(st, f"write_{result}"))
                cum, buckets = 0, []
                for bound, count in zip(
                    (*LATENCY_BUCKETS, float("inf")), st.latency_buckets, strict=True
                ):
                    cum += count
                    buckets.append((_le(bound), cum))
                latency.add_metric([name, tier], buckets, st.latency_sum)
                up.add_metric([name, tier], 1.0 if is_up else 0.0)
            if snap["l1"] is not None:
                n, b, ev = snap["l1"]
                entries.add_metric([name], n)
                nbytes.add_metric([name], b)
                evictions.add_metric([name], ev)
            for event, count in snap["flights"].items():
                flights.add_metric([name, event], count)
        yield from (requests, writes, latency, up, entries, nbytes, evictions, flights)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, CacheCollector] = (
    weakref.WeakKeyDictionary()
)


def register_source(metrics: MetricsRegistry, source: StatsSource) -> None:
    """Export ``source`` through ``metrics``; the latest source under a name wins."""
    collector = _collectors.get(metrics.registry)
    if collector is None:
        collector = CacheCollector()
        collector.sources[source.name] = source
        metrics.registry.register(collector)
        _collectors[metrics.registry] = collector
    else:
        collector.sources[source.name] = source
