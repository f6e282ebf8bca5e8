"""Helpers for the monitoring tests: an executor that runs inline (no thread, no waiting),
a pipeline whose snapshot the test sets, a monitor on a manual clock."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.gpu import FakeDevice, FakeNVML, GPUMonitor
from prsm.performance.monitoring import (
    MemoryMetricsStore,
    MetricsRegistry,
    MonitoringSettings,
    PerformanceMonitor,
    RequestRecorder,
    SystemSampler,
)


class InlineExecutor(Executor):
    """Runs each submitted call at once, in the caller's thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


class Pipeline:
    """A pipeline whose snapshot is whatever the test puts in ``nodes``."""

    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []

    def snapshot(self) -> dict[str, Any]:
        return {"nodes": self.nodes}


def node(node_id: str, price: float = 0.0, **metrics: Any) -> dict[str, Any]:
    return {
        "id": node_id,
        "models": ["m"],
        "state": "active",
        "score": 0.9,
        "breaker": {"state": "closed"},
        "cost_per_1k_tokens": price,
        "metrics": {"cpu": 0.1, "memory": 0.2, "queue_depth": 0, "in_flight": 0, **metrics},
    }


def make_monitor(
    clock: ManualClock,
    *,
    pipeline: Pipeline | None = None,
    store: Any = None,
    objective: float = 1.0,
    gpus: Any = None,
    **kw: Any,
) -> PerformanceMonitor:
    settings = MonitoringSettings(latency_objective=objective)
    recorder = RequestRecorder(MetricsRegistry(), latency_objective=objective)
    return PerformanceMonitor(
        recorder,
        pipeline,
        settings=settings,
        store=store,
        sampler=SystemSampler(gpus),
        clock=clock,
        executor=InlineExecutor(),
        **kw,
    )


@pytest.fixture
def fake_gpus() -> GPUMonitor:
    return GPUMonitor(FakeNVML([FakeDevice(used_bytes=4 << 30, utilization=0.5)]))


@pytest.fixture
def memory_store() -> MemoryMetricsStore:
    return MemoryMetricsStore()
