"""The fleet's figures with several gateway processes (``serve --workers N``): each process
writes its own series (``instance="gateway-K"``) counting only its requests, and the analysis
sums them, so three processes read like one process carrying their total."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from prsm.performance.analytics import AnalyticsSettings, PerformanceAnalytics
from prsm.performance.clock import ManualClock
from prsm.performance.monitoring import MemoryMetricsStore, Sample

NOW = 1_700_000_000.0
STEP = 10.0
SHARES = (0.5, 0.3, 0.2)
LATE = 2 * 3600.0  # the third process starts two hours into the window


def _history(processes: int) -> list[Sample]:
    """Six hours of a fleet whose load rises from 1 to 40 requests in flight on one node
    (throughput linear in it, 5 ms a request), split over ``processes`` gateway processes
    (``SHARES``, the last one started ``LATE``); ``processes=1`` writes their sums."""
    rng = np.random.default_rng(3)
    t = np.arange(NOW - 6 * 3600, NOW, STEP)
    frac = (t - t[0]) / (t[-1] - t[0])
    n = np.round(1 + 39 * frac) * (1 + rng.normal(0, 0.01, len(t)))
    x = 200.0 * n
    parts = []
    for k, share in enumerate(SHARES):
        alive = t >= t[0] + LATE if k == len(SHARES) - 1 else np.ones(len(t), dtype=bool)
        parts.append((alive, share * x, share * n))
    samples: list[Sample] = []

    def put(metric: str, ts: np.ndarray, values: np.ndarray, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        samples.extend(
            Sample(metric, key, float(a), float(b)) for a, b in zip(ts, values, strict=True)
        )

    if processes == 1:
        rate = sum(np.where(alive, r, 0.0) for alive, r, _ in parts)
        flight = sum(np.where(alive, f, 0.0) for alive, _, f in parts)
        put("application.request_rate", t, rate)
        put("node.request_rate", t, rate, node="sim")
        put("node.in_flight", t, flight, node="sim")
        put("node.latency_p50", t, np.full(len(t), 0.005), node="sim")
        put("stage.mean", t, np.full(len(t), 0.005), stage="upstream")
        return samples
    for k, (alive, rate, flight) in enumerate(parts):
        me = f"gateway-{k}"
        put("application.request_rate", t[alive], rate[alive], instance=me)
        put("node.request_rate", t[alive], rate[alive], node="sim", instance=me)
        put("node.in_flight", t[alive], flight[alive], node="sim", instance=me)
        put("node.latency_p50", t[alive], np.full(alive.sum(), 0.005), node="sim", instance=me)
        put("stage.mean", t[alive], np.full(alive.sum(), 0.005), stage="upstream", instance=me)
    return samples


async def _capacity(processes: int) -> dict[str, Any]:
    store = MemoryMetricsStore()
    store.write(_history(processes))
    settings = AnalyticsSettings(latency_objective=0.05, seasonal_period=None)
    pa = PerformanceAnalytics(store, settings, clock=ManualClock(wall_offset=NOW))
    result = await pa.analyze_performance_trends("6h")
    cap: dict[str, Any] = result["capacity"]
    return cap


async def test_three_processes_read_like_one_carrying_their_sum() -> None:
    one, three = await _capacity(1), await _capacity(3)
    assert three["processes"] == 3 and one["processes"] == 1
    assert three["replicas"] == one["replicas"] == 1
    for key in ("arrival_rate_now", "arrival_rate_p95", "node_rate_total"):
        assert three[key] == pytest.approx(one[key], rel=1e-9), key
    # the USL fit sees the same points, summed in another order: equal to rounding
    for key in ("per_replica_capacity", "utilization_now", "utilization_p95", "utilization_mean"):
        assert three[key] == pytest.approx(one[key], rel=1e-3), key
    node1, node3 = one["nodes"]["sim"], three["nodes"]["sim"]
    assert node3["basis"] == node1["basis"] == "usl"
    assert node3["rate_now"] == pytest.approx(node1["rate_now"], rel=1e-9)
    assert node3["latency_p50"] == pytest.approx(0.005)


async def test_the_summed_rate_is_every_process_s_and_has_its_trend() -> None:
    cap = await _capacity(3)
    # at the end all three run: 200 req/s a request in flight, 40 in flight
    assert cap["arrival_rate_now"] == pytest.approx(200.0 * 40, rel=0.05)
    assert cap["node_rate_total"] == pytest.approx(cap["arrival_rate_now"], rel=1e-9)
    trend = cap["arrival_rate_trend"]
    assert trend is not None and trend["direction"] == "increasing"
    # one process's rate alone (what the fleet read before) is half the total at most
    assert cap["arrival_rate_now"] > 1.9 * SHARES[0] * 200.0 * 40
