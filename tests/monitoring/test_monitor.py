"""PerformanceMonitor: the post's collect_metrics() shape, figures computed from what was
recorded, history written off the loop, alerts evaluated each interval."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.gpu import FakeNVML, GPUMonitor
from prsm.performance.monitoring import (
    AlertManager,
    AlertRule,
    AlertSettings,
    MemoryMetricsStore,
    Notification,
    Sample,
)

from .conftest import Pipeline, make_monitor, node


async def test_collect_metrics_has_the_posts_shape(clock: ManualClock, fake_gpus: Any) -> None:
    monitor = make_monitor(clock, gpus=fake_gpus)
    m = await monitor.collect_metrics()
    assert set(m) == {"timestamp", "interval", "system", "application", "business"}
    assert m["timestamp"] == clock.time()
    system = m["system"]
    for key in ("cpu_usage", "memory_usage", "disk_io", "network_io", "gpu_utilization"):
        assert key in system
    assert 0.0 <= system["cpu_usage"] <= 100.0
    assert system["gpu_utilization"] == 0.5
    assert system["gpu_memory_usage"] == pytest.approx(0.25)
    for key in ("request_rate", "response_time_p50", "response_time_p95", "response_time_p99",
                "error_rate", "queue_depth", "cache_hit_rate", "cache_hit_rates"):  # fmt: skip
        assert key in m["application"]
    for key in ("active_users", "throughput", "cost_per_request", "sla_compliance"):
        assert key in m["business"]
    await monitor.close()


async def test_no_gpu_is_reported_cleanly(clock: ManualClock) -> None:
    monitor = make_monitor(clock, gpus=GPUMonitor(FakeNVML(unavailable="driver not loaded")))
    system = (await monitor.collect_metrics())["system"]
    assert system["gpu"] == {"available": False, "reason": "driver not loaded", "devices": []}
    assert system["gpu_utilization"] is None
    await monitor.close()


async def test_rates_percentiles_errors_and_sla_from_what_was_recorded(
    clock: ManualClock,
) -> None:
    pipe = Pipeline()
    pipe.nodes = [node("a", price=2.0, queue_depth=3, in_flight=2), node("b", price=0.5)]
    monitor = make_monitor(clock, pipeline=pipe, objective=0.1)
    monitor.metrics_collector.start(clock.monotonic())
    r = monitor.recorder
    for _ in range(6):
        r.request("chat", "m", "t1", "a", "ok", "", 0.05, 0.04, 100, 400, "miss")  # fast
    r.request("chat", "m", "t2", "b", "ok", "", 0.5, 0.45, 1000, 1000, "miss")  # slow
    r.request("chat", "m", "t1", None, "cache_hit", "", 0.001, cache="l1")
    r.request("chat", "m", "t3", None, "cache_hit", "", 0.002, cache="semantic")
    r.request("chat", "m", "t3", "b", "error", "timeout", 2.0)
    clock.advance(2.0)
    m = await monitor.collect_metrics()
    app, biz = m["application"], m["business"]
    assert m["interval"] == 2.0
    assert app["requests"] == 10
    assert app["request_rate"] == 5.0
    assert app["error_rate"] == 0.1
    assert app["queue_depth"] == 3
    assert app["in_flight"] == 2
    assert app["cache_hit_rate"] == pytest.approx(2 / 9)
    assert app["cache_hit_rates"] == {"l1": pytest.approx(1 / 9), "semantic": pytest.approx(1 / 9)}
    assert 0.025 <= app["response_time_p50"] <= 0.05
    assert app["response_time_p99"] >= 0.5
    assert biz["sla_compliance"] == 0.8  # 6 fast + 2 cache hits of 10
    assert biz["sla_violations"] == 2
    assert biz["active_users"] == 3
    # cost: a served 6 x 500 tokens at 2.0/1k; b served 2000 at 0.5/1k
    assert biz["cost_per_request"] == pytest.approx((6 * 500 * 2.0 + 2000 * 0.5) / 1000 / 10)
    assert biz["throughput"]["tokens_per_s"] == pytest.approx(5000 / 2)
    assert app["models"]["m"]["request_rate"] == 5.0
    assert app["nodes"]["a"]["request_rate"] == 3.0
    assert app["nodes"]["a"]["cost_per_1k_tokens"] == 2.0
    assert app["nodes"]["b"]["queue_depth"] == 0
    # the next interval starts from zero
    clock.advance(1.0)
    again = await monitor.collect_metrics()
    assert again["application"]["requests"] == 0
    assert again["application"]["response_time_p50"] is None
    assert again["business"]["cost_per_request"] is None
    assert again["business"]["cost_total"] == pytest.approx(biz["cost_total"])
    await monitor.close()


async def test_active_users_are_distinct_tenants_within_the_window(clock: ManualClock) -> None:
    monitor = make_monitor(clock)
    monitor.metrics_collector.active_users_window = 300.0
    r = monitor.recorder
    r.request("chat", "m", "old", None, "cache_hit", "", 0.001)
    await monitor.collect_metrics()
    clock.advance(200.0)
    r.request("chat", "m", "new", None, "cache_hit", "", 0.001)
    assert (await monitor.collect_metrics())["business"]["active_users"] == 2
    clock.advance(200.0)
    assert (await monitor.collect_metrics())["business"]["active_users"] == 1
    await monitor.close()


async def test_run_once_writes_history_and_compacts(clock: ManualClock) -> None:
    store = MemoryMetricsStore()
    monitor = make_monitor(clock, store=store, flush_interval=2.0)
    monitor.recorder.request("chat", "m", "t", "a", "ok", "", 0.05)
    await monitor.run_once()  # the first flush is due at once
    assert "application.requests" in store.metrics()
    clock.advance(1.0)
    await monitor.run_once()
    assert monitor.flushes == 1  # not due yet: pending
    clock.advance(1.0)
    await monitor.run_once()
    assert monitor.flushes == 2
    (series,) = store.query("slo.requests", since=clock.time() - 10, until=clock.time(), agg="sum")
    assert sum(v for _, v in series.points) == 1.0
    await monitor.close()


class FailingOnce(MemoryMetricsStore):
    def __init__(self) -> None:
        super().__init__()
        self.fail = True

    def write(self, samples: Any) -> int:
        if self.fail:
            self.fail = False
            raise OSError("disk full")
        return super().write(samples)


async def test_a_failed_flush_keeps_the_samples_for_the_next(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = FailingOnce()
    monitor = make_monitor(clock, store=store)
    with caplog.at_level(logging.ERROR, "prsm.performance.monitoring"):
        await monitor.run_once()
    assert monitor.flush_errors == 1
    assert "disk full" in caplog.text
    clock.advance(1.0)
    await monitor.run_once()
    assert monitor.flushes == 1
    (s,) = store.query("system.cpu_usage", since=clock.time() - 5, until=clock.time())
    assert len(s.points) == 2  # both collections made it
    await monitor.close()


class Recording:
    def __init__(self) -> None:
        self.notes: list[Notification] = []

    async def send(self, note: Notification) -> None:
        self.notes.append(note)


async def test_alerts_run_each_interval_on_the_history(clock: ManualClock) -> None:
    store = MemoryMetricsStore()
    sink = Recording()
    rule = AlertRule("Errors", "application.error_rate", ">", 0.5, severity="page")
    alerts = AlertManager(AlertSettings(rules=(rule,)), notifiers=[sink], clock=clock)
    monitor = make_monitor(clock, store=store, alerts=alerts)
    monitor.recorder.request("chat", "m", "t", "a", "error", "500", 0.05)
    await monitor.run_once()
    await alerts.drain()
    assert [(n.status, n.alert.name) for n in sink.notes] == [("firing", "Errors")]
    clock.advance(1.0)
    monitor.recorder.request("chat", "m", "t", "a", "ok", "", 0.05)
    await monitor.run_once()
    await alerts.drain()
    assert [n.status for n in sink.notes] == ["firing", "resolved"]
    assert alerts.snapshot()["recent"][0]["name"] == "Errors"
    await monitor.close()


async def test_the_loop_runs_every_interval_and_close_flushes(clock: ManualClock) -> None:
    store = MemoryMetricsStore()
    monitor = make_monitor(clock, store=store, interval=1.0, flush_interval=60.0)
    await monitor.start()
    for _ in range(200):  # let the first collection run (no real waiting: inline executor)
        if monitor.collections:
            break
        await _yield()
    assert monitor.collections == 1
    clock.advance(1.0)
    for _ in range(200):
        if monitor.collections == 2:
            break
        await _yield()
    assert monitor.collections == 2
    await monitor.close()
    (s,) = store.query("system.cpu_usage", since=clock.time() - 5, until=clock.time())
    assert len(s.points) == 2  # the second was pending: close flushed it


async def _yield() -> None:
    import asyncio

    await asyncio.sleep(0)


def test_history_samples_name_sections_and_labels() -> None:
    from prsm.performance.monitoring import flatten_metrics

    metrics = {
        "timestamp": 1.0,
        "system": {"cpu_usage": 5.0, "disk_io": {"read_bytes_per_s": 2.0}, "gpu": {"devices": []}},
        "application": {
            "request_rate": None,
            "requests": 4,
            "errors": 1,
            "cache_hit_rates": {"l1": 0.5},
            "stages": {"parse": {"p50": 1e-5, "p95": 2e-5, "mean": 1e-5}},
            "models": {"m": {"request_rate": 2.0}},
            "nodes": {"a": {"latency_p95": 0.1, "breaker": "open"}},
        },
        "business": {"sla_violations": 2, "throughput": {"tokens_per_s": 9.0}, "models": {}},
    }
    got = {(s.metric, s.labels): s.value for s in flatten_metrics(metrics, (("instance", "g0"),))}
    i = ("instance", "g0")
    assert got[("system.cpu_usage", (i,))] == 5.0
    assert got[("system.disk_read_bytes_per_s", (i,))] == 2.0
    assert ("application.request_rate", (i,)) not in got  # None: left out, not zero
    assert got[("application.cache_hit_rate_by_tier", (i, ("tier", "l1")))] == 0.5
    assert got[("stage.p95", (i, ("stage", "parse")))] == 2e-5
    assert got[("model.request_rate", (i, ("model", "m")))] == 2.0
    assert got[("node.breaker_state", (("instance", "g0"), ("node", "a")))] == 2.0
    assert got[("business.tokens_per_s", (i,))] == 9.0
    assert got[("slo.requests", (i,))] == 4.0
    assert got[("slo.errors", (i,))] == 1.0
    assert got[("slo.slow", (i,))] == 1.0
    assert all(isinstance(s, Sample) for s in flatten_metrics(metrics))
