"""The capacity model bounded by the gateway's CPU, on synthetic histories: a gateway that is
latency-bound (linear in concurrency, as measured by ``benchmarks/capacity.py``) until its one
core runs out."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prsm.performance.analytics import AnalyticsSettings, PerformanceAnalytics
from prsm.performance.analytics._report import write_report
from prsm.performance.clock import ManualClock
from prsm.performance.errors import ConfigError
from prsm.performance.monitoring import MemoryMetricsStore, Sample

NOW = 1_700_000_000.0
STEP = 10.0
CPU_PER_REQUEST = 70e-6
BACKGROUND = 0.02


def write_gateway(
    store: MemoryMetricsStore,
    *,
    processes: int = 1,
    cpu: bool = True,
    top: float = 80.0,
    seed: int = 0,
) -> None:
    """Six hours at 10 s: in flight rising from 1 to ``top`` per process, throughput linear in
    it (156.6 req/s each: 5 ms upstream), each process's CPU ``BACKGROUND`` + 70 µs a request
    (percent of one core), a machine of 4 cores, one upstream node."""
    rng = np.random.default_rng(seed)
    t = np.arange(NOW - 6 * 3600, NOW, STEP)
    frac = (t - t[0]) / (t[-1] - t[0])
    n = np.round(1 + (top - 1) * frac)
    x = 156.6 * n * (1 + rng.normal(0, 0.01, len(t)))
    samples: list[Sample] = []

    def put(metric: str, values: np.ndarray, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        samples.extend(
            Sample(metric, key, float(a), float(b)) for a, b in zip(t, values, strict=True)
        )

    for k in range(processes):
        labels = {"instance": f"gateway-{k}"} if processes > 1 else {}
        put("application.request_rate", x, **labels)
        if cpu:
            used = BACKGROUND + CPU_PER_REQUEST * x + rng.normal(0, 0.003, len(t))
            put("system.process_cpu_usage", 100 * used, **labels)
        put("system.cpu_count", np.full(len(t), 4.0), **labels)
    put("node.in_flight", n * processes, node="sim")
    put("node.request_rate", x * processes, node="sim")
    put("node.latency_p50", np.full(len(t), 0.0061), node="sim")
    for stage, mean in (("parse", 0.00002), ("upstream", 0.0052), ("respond", 0.00003)):
        put("stage.mean", np.full(len(t), mean), stage=stage)
    store.write(samples)


async def analyse(**kw: Any) -> dict[str, Any]:
    store = MemoryMetricsStore()
    write_gateway(store, **kw)
    settings = AnalyticsSettings(latency_objective=0.05, seasonal_period=None)
    pa = PerformanceAnalytics(store, settings, clock=ManualClock(wall_offset=NOW))
    return await pa.analyze_performance_trends("6h")


async def test_the_cpu_ceiling_is_measured_from_the_history_and_binds() -> None:
    result = await analyse()
    cap = result["capacity"]
    gw = cap["gateway"]
    assert gw["method"] == "regression" and gw["processes"] == 1
    assert gw["cpu_seconds_per_request"] == pytest.approx(CPU_PER_REQUEST, rel=0.03)
    assert gw["background_cores"] == pytest.approx(BACKGROUND, abs=0.005)
    assert gw["cores_available"] == 1.0
    ceiling = (1 - BACKGROUND) / CPU_PER_REQUEST
    assert gw["cpu_ceiling"] == pytest.approx(ceiling, rel=0.05)
    assert cap["binding"] == "gateway_cpu"
    assert cap["fleet_capacity"] == pytest.approx(gw["cpu_ceiling"])
    model = cap["nodes"]["sim"]["model"]
    assert model["binding"] == "cpu"
    # the knee: the USL (linear here) reaching 90 % of the CPU ceiling
    assert model["knee_concurrency"] == pytest.approx(0.9 * ceiling / 156.6, rel=0.06)
    assert cap["nodes"]["sim"]["basis"] == "usl" and cap["nodes"]["sim"]["capacity"] > 5 * ceiling


async def test_the_gateway_cpu_saturates_first_and_more_processes_are_recommended() -> None:
    result = await analyse()
    b = result["bottleneck"]
    assert b["saturates_first"] == "gateway CPU" and b["resource"] == "cpu"
    assert b["limiting_stage"] == "upstream"
    sentence = b["sentence"]
    assert "the gateway's CPU saturates first" in sentence
    assert "70 µs CPU a request" in sentence or "69.9 µs" in sentence or "70.1 µs" in sentence
    assert "bound by the gateway's CPU" in sentence
    types = {i["type"] for i in result["insights"]}
    assert "saturation_ahead" in types
    recs = [r for r in result["recommendations"] if r["action"] == "add_gateway_processes"]
    assert recs, result["recommendations"]
    impact = recs[0]["estimated_impact"]
    rate = impact["arrival_rate"]
    per_process = impact["cpu_ceiling_now"]
    assert impact["processes_needed"] == math.ceil(rate / (0.8 * per_process))
    assert impact["processes_needed"] > impact["processes_now"] == 1
    assert impact["utilization_after"] <= 0.8 < impact["utilization_now"]
    assert recs[0]["processes"] == impact["processes_needed"] - 1


async def test_several_processes_pool_their_cost_and_add_their_cores() -> None:
    result = await analyse(processes=2, top=40.0)
    gw = result["capacity"]["gateway"]
    assert gw["processes"] == 2 and gw["cores_available"] == 2.0
    assert gw["background_cores"] == pytest.approx(2 * BACKGROUND, abs=0.01)
    assert gw["cpu_ceiling"] == pytest.approx(2 * (1 - BACKGROUND) / CPU_PER_REQUEST, rel=0.05)
    # 2 × 40 × 156.6 req/s is under 2 cores' ceiling: the node's own USL is not what binds,
    # and the gateway is still the resource with the least headroom
    assert result["bottleneck"]["saturates_first"] == "gateway CPU"


async def test_without_cpu_history_the_node_saturates_first() -> None:
    result = await analyse(cpu=False)
    cap = result["capacity"]
    assert "gateway" not in cap and cap["binding"] == "replicas"
    assert result["bottleneck"]["saturates_first"] == "sim"
    assert result["bottleneck"]["resource"] == "node"
    assert "gateway" not in result["bottleneck"]["sentence"]
    assert all(r["action"] != "add_gateway_processes" for r in result["recommendations"])


async def test_the_report_charts_the_gateway_cpu_beside_the_nodes(tmp_path: Path) -> None:
    store = MemoryMetricsStore()
    write_gateway(store)
    settings = AnalyticsSettings(latency_objective=0.05, seasonal_period=None)
    pa = PerformanceAnalytics(store, settings, clock=ManualClock(wall_offset=NOW))
    result = await pa.analyze_performance_trends("6h")
    page = write_report(result, pa.series, tmp_path).read_text()
    assert html.escape("the gateway's CPU saturates first") in page
    assert (tmp_path / "bottleneck.png").stat().st_size > 0


def test_cores_per_process_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="gateway_cores_per_process"):
        AnalyticsSettings(gateway_cores_per_process=0)
