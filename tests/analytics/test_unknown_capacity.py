"""A node whose capacity cannot be fitted (its history shows one concurrency: a light, steady
load) has an unknown capacity: the busiest rate it has served is only a lower bound, and
nothing (utilisation, saturation ahead, replicas to add) is judged against it. Before, that
rate was taken for its capacity, so a node idling at 5 req/s read as ~100 % used and the
analysis advised, critically, to scale up."""

from __future__ import annotations

from typing import Any

import numpy as np

from prsm.performance.analytics import AnalyticsSettings, PerformanceAnalytics
from prsm.performance.clock import ManualClock
from prsm.performance.monitoring import MemoryMetricsStore, Sample

NOW = 1_700_000_000.0
STEP = 10.0


def _steady(rate: float, in_flight: float) -> list[Sample]:
    """An hour of one node answering ``rate`` req/s at a constant ``in_flight``, 75 µs each,
    the rate rising slightly (as the few requests of a quiet hour do)."""
    t = np.arange(NOW - 3600, NOW, STEP)
    rates = rate * (1 + 0.02 * (t - t[0]) / 3600)
    series = {
        ("application.request_rate", ()): rates,
        ("node.request_rate", (("node", "a"),)): rates,
        ("node.in_flight", (("node", "a"),)): np.full(len(t), in_flight),
        ("node.latency_p50", (("node", "a"),)): np.full(len(t), 75e-6),
        ("stage.mean", (("stage", "upstream"),)): np.full(len(t), 75e-6),
    }
    return [
        Sample(metric, labels, float(ts), float(v))
        for (metric, labels), values in series.items()
        for ts, v in zip(t, values, strict=True)
    ]


async def _analyse(samples: list[Sample]) -> dict[str, Any]:
    store = MemoryMetricsStore()
    store.write(samples)
    settings = AnalyticsSettings(latency_objective=0.05, seasonal_period=None)
    pa = PerformanceAnalytics(store, settings, clock=ManualClock(wall_offset=NOW))
    return await pa.analyze_performance_trends("1h")


async def test_a_steady_light_load_is_not_read_as_saturation() -> None:
    result = await _analyse(_steady(5.0, 1.0))
    node = result["capacity"]["nodes"]["a"]
    assert node["capacity"] is None and node["basis"] == "unknown"
    assert node["capacity_at_least"] >= 5.0
    assert node["utilization"] is None
    assert "per_replica_capacity" not in result["capacity"]
    kinds = {i["type"] for i in result["insights"]}
    assert not kinds & {"saturation_ahead", "scale_up", "scale_down"}, result["insights"]
    assert result["bottleneck"]["saturates_first"] is None
