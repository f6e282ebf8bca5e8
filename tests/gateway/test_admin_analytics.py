"""``GET /admin/analytics``: the post's ``analyze_performance_trends`` over the gateway's
metrics history, as JSON for the dashboard and operators."""

from __future__ import annotations

from typing import Any

import httpx

from prsm.performance.clock import ManualClock
from prsm.performance.gateway._app import GatewayApp
from prsm.performance.monitoring._monitor import PerformanceMonitor
from prsm.performance.monitoring._store import MemoryMetricsStore, Sample
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator

T0 = 1_800_000_000.0


def _app(store: MemoryMetricsStore | None) -> GatewayApp:
    clock = ManualClock(wall_offset=T0 + 3600)
    perf = PerformanceOrchestrator(clock=clock)
    perf.monitor = PerformanceMonitor(perf.recorder, perf, store=store, clock=clock)
    return GatewayApp(perf)


def _client(app: GatewayApp) -> Any:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000")


async def test_analytics_reads_the_history() -> None:
    store = MemoryMetricsStore()
    # latency climbing steadily over the hour: a rising trend the analysis must see
    store.write(
        Sample("application.response_time_p95", (), T0 + 60 * i, 0.1 + 0.01 * i) for i in range(60)
    )
    async with _client(_app(store)) as c:
        r = await c.get("/admin/analytics", params={"since": "1h"})
        assert r.status_code == 200, r.text
        found = r.json()
        assert set(found) >= {"trends", "anomalies", "insights", "recommendations", "bottleneck"}
        trend = found["trends"]["application.response_time_p95"]
        assert trend["direction"] == "increasing", trend
        r = await c.get("/admin/analytics", params={"since": "-5m"})
        assert r.status_code == 422 and "since" in r.json()["error"]["message"]
        assert (await c.post("/admin/analytics")).status_code == 422


async def test_analytics_without_history_says_so() -> None:
    async with _client(_app(None)) as c:
        r = await c.get("/admin/analytics")
        assert r.status_code == 503 and "no metrics history" in r.json()["error"]["message"]
