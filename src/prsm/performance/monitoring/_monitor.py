"""``PerformanceMonitor``: the monitoring loop (the source post's class).

Every ``interval`` seconds: :meth:`PerformanceMonitor.collect_metrics` (system metrics read in
a worker thread; application and business metrics from the recorder's counts, on the loop, in
O(series)), the collection appended to the history's pending samples, flushed to the store
every ``flush_interval`` (in the worker thread), then the alert rules evaluated on the
history (in the worker thread) and their notifications sent (background tasks). Nothing of
this runs on a request's path, and nothing blocking runs on the event loop.

``collect_metrics()`` returns the post's shape::

    {"timestamp": <unix seconds>, "interval": <seconds covered>,
     "system": {...}, "application": {...}, "business": {...}}
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar

from .._awaiting import stop_task
from ..clock import Clock, SystemClock
from ._alerts import AlertManager
from ._collector import MetricsCollector, MonitoredPipeline
from ._flatten import flatten_metrics
from ._recorder import RequestRecorder
from ._registry import MetricsRegistry
from ._settings import AlertSettings, HistorySettings, MonitoringSettings
from ._store import Labels, MetricsStore, Sample
from ._system import SystemSampler, default_gpus

log = logging.getLogger("prsm.performance.monitoring")

T = TypeVar("T")

#: Pending samples kept while the store cannot be written (the oldest go first past this).
MAX_PENDING = 200_000


class PerformanceMonitor:
    """Collects system, application and business metrics every ``interval`` seconds into the
    history ``store`` and evaluates ``alerts`` on it.

    ``recorder`` is where requests are recorded (the orchestrator's; a new one on ``registry``
    if omitted); ``pipeline`` is read for node figures (its ``snapshot()``). Without a
    ``store`` there is no history (collections are still kept as :attr:`latest`); without
    ``alerts`` no rule runs. ``sampler`` reads the system (psutil, GPUs when
    ``settings.gpu``). ``labels`` are added to every history series (e.g. ``instance`` when
    several gateway processes share one store). Blocking work runs on ``executor`` (default:
    one worker thread of its own).
    """

    def __init__(
        self,
        recorder: RequestRecorder | None = None,
        pipeline: MonitoredPipeline | None = None,
        *,
        settings: MonitoringSettings | None = None,
        interval: float = 1.0,
        store: MetricsStore | None = None,
        flush_interval: float = 1.0,
        alerts: AlertManager | None = None,
        sampler: SystemSampler | None = None,
        registry: MetricsRegistry | None = None,
        labels: Labels = (),
        clock: Clock | None = None,
        compact_interval: float = 60.0,
        executor: Executor | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self.settings = settings or MonitoringSettings()
        s = self.settings
        if recorder is None:
            recorder = RequestRecorder(
                registry or MetricsRegistry(),
                latency_objective=s.latency_objective,
                label_limit=s.label_limit,
                provider=s.provider,
            )
        self.recorder = recorder
        self.pipeline = pipeline
        self.metrics_collector = MetricsCollector(
            recorder, pipeline, active_users_window=s.active_users_window
        )
        self.interval = interval
        self.store = store
        self.flush_interval = flush_interval
        self.compact_interval = compact_interval
        self.alert_manager = alerts
        self.labels = labels
        self.clock = clock or SystemClock()
        self._sampler = sampler
        self._executor: Executor | None = executor  # one worker thread, made at first use
        self._own_executor = executor is None
        self._pending: list[Sample] = []
        self._last_flush: float | None = None
        self._last_compact: float | None = None
        self._task: asyncio.Task[None] | None = None
        self.latest: dict[str, Any] | None = None
        self.collections = 0
        self.flushes = 0
        self.flush_errors = 0
        self._gauges = _Gauges(recorder.registry)

    # -- the worker thread -----------------------------------------------------------------

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prsm-monitor")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    @property
    def sampler(self) -> SystemSampler:
        if self._sampler is None:
            self._sampler = SystemSampler(default_gpus() if self.settings.gpu else None)
        return self._sampler

    # -- the post's API --------------------------------------------------------------------

    async def collect_system_metrics(self) -> dict[str, Any]:
        """cpu, memory, disk and network I/O, process, GPUs (read in the worker thread)."""
        now = self.clock.monotonic()
        if self._sampler is None:  # psutil's and NVML's start-up, off the loop too
            await self._off_loop(lambda: self.sampler)
        return await self._off_loop(self.sampler.read, now)

    async def collect_metrics(self) -> dict[str, Any]:
        """One collection: ``{"timestamp", "interval", "system", "application",
        "business"}`` (see :mod:`._collector` for each section's keys), and ``"scaling"``
        (the scaler's last step: ready and target replicas, forecast, score) when the
        pipeline has a scaler."""
        system = await self.collect_system_metrics()
        now = self.clock.monotonic()
        last = self.metrics_collector._last
        application, business = self.metrics_collector.collect(now)
        metrics = {
            "timestamp": self.clock.time(),
            "interval": now - last if last is not None else None,
            "system": system,
            "application": application,
            "business": business,
        }
        scaling = scaling_figures(getattr(self.pipeline, "scaler", None))
        if scaling is not None:
            metrics["scaling"] = scaling
        self.latest = metrics
        self.collections += 1
        self._gauges.update(metrics)
        return metrics

    # -- the loop ----------------------------------------------------------------------------

    async def run_once(self) -> dict[str, Any]:
        """Collect, add to the history (flushing when due), evaluate the alert rules."""
        metrics = await self.collect_metrics()
        now = self.clock.monotonic()
        if self.store is not None:
            self._pending.extend(flatten_metrics(metrics, self.labels))
            if len(self._pending) > MAX_PENDING:
                del self._pending[: len(self._pending) - MAX_PENDING]
            if self._last_flush is None or now - self._last_flush >= self.flush_interval:
                await self.flush()
            if self._last_compact is None or now - self._last_compact >= self.compact_interval:
                self._last_compact = now
                await self._off_loop(self.store.compact, metrics["timestamp"])
        alerts = self.alert_manager
        if alerts is not None and alerts.has_rules and self.store is not None:
            notes = await self._off_loop(alerts.evaluate, self.store, metrics["timestamp"])
            alerts.dispatch(notes)
        return metrics

    async def flush(self) -> None:
        """Write the pending samples to the store (in the worker thread)."""
        store = self.store
        self._last_flush = self.clock.monotonic()
        if store is None or not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            await self._off_loop(store.write, batch)
        except Exception:
            self.flush_errors += 1
            self._pending = batch + self._pending  # kept for the next flush
            log.exception("metrics history: writing %d samples failed", len(batch))
            return
        self.flushes += 1

    async def _loop(self) -> None:
        while True:
            started = self.clock.monotonic()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad collection must not end monitoring: logged, next one
                log.exception("monitoring: a collection failed")
            spent = self.clock.monotonic() - started
            await self.clock.sleep(max(0.0, self.interval - spent))

    async def start(self) -> None:
        """Start the loop (idempotent)."""
        if self._task is None or self._task.done():
            if self.metrics_collector._last is None:
                self.metrics_collector.start(self.clock.monotonic())
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        """Stop the loop, flush what is pending, close the store and the notifiers."""
        task, self._task = self._task, None
        await stop_task(task)
        if self.store is not None:
            await self.flush()
            await self._off_loop(self.store.close)
        if self.alert_manager is not None:
            await self.alert_manager.aclose()
        if self._executor is not None and self._own_executor:
            executor, self._executor = self._executor, None
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)

    # -- reading -----------------------------------------------------------------------------

    async def history(self, metric: str, **query: Any) -> list[dict[str, Any]]:
        """``store.query(metric, **query)`` run in the worker thread, as plain data."""
        if self.store is None:
            return []
        found = await self._off_loop(functools.partial(self.store.query, metric, **query))
        return [s.as_dict() for s in found]


class _Gauges:
    """Business and system figures that PromQL cannot derive from the counters, as gauges."""

    def __init__(self, registry: MetricsRegistry) -> None:
        self.active_users = registry.gauge(
            "active_users", "Distinct tenants seen within the active-users window."
        )
        self.cost = registry.counter(
            "cost", "Spend on upstream tokens (node prices times tokens), by model.", ["model"]
        )
        self.cpu = registry.gauge("system_cpu_usage_ratio", "Machine CPU use (0 to 1).")
        self.memory = registry.gauge("system_memory_usage_ratio", "Machine memory use (0 to 1).")
        self.gpu = registry.gauge("gpu_utilization_ratio", "GPU utilisation (0 to 1).", ["gpu"])
        self.gpu_memory = registry.gauge(
            "gpu_memory_usage_ratio", "GPU memory in use (0 to 1).", ["gpu"]
        )

    def update(self, metrics: dict[str, Any]) -> None:
        biz = metrics["business"]
        self.active_users.set(biz["active_users"])
        for model, values in biz["models"].items():
            per_request = values.get("cost_per_request")
            if per_request:
                self.cost.labels(model).inc(per_request * values["requests"])
        system = metrics["system"]
        self.cpu.set(system["cpu_usage"] / 100.0)
        self.memory.set(system["memory_usage"] / 100.0)
        for dev in system["gpu"]["devices"]:
            if dev["utilization"] is not None:
                self.gpu.labels(str(dev["index"])).set(dev["utilization"])
            if dev["memory_usage"] is not None:
                self.gpu_memory.labels(str(dev["index"])).set(dev["memory_usage"])


def build_store(settings: HistorySettings) -> MetricsStore:
    """The history store ``settings`` describe (SQLite in the data directory by default)."""
    from ._store import MemoryMetricsStore

    if settings.backend == "memory":
        return MemoryMetricsStore(settings.tiers, max_series=settings.max_series)
    from ._sqlite import SQLiteMetricsStore

    return SQLiteMetricsStore(settings.path, settings.tiers, max_series=settings.max_series)


def build_monitor(
    recorder: RequestRecorder,
    pipeline: MonitoredPipeline | None,
    *,
    monitoring: MonitoringSettings,
    history: HistorySettings,
    alerts: AlertSettings,
    interval: float,
    labels: Labels = (),
    evaluate_alerts: bool = True,
    clock: Clock | None = None,
) -> PerformanceMonitor:
    """The monitor the config's ``monitoring``, ``history`` and ``alerts`` sections describe
    (the gateway's). With alert rules but no history, the rules run on an in-memory store.
    ``evaluate_alerts=False`` (every gateway process but the first) records history only."""
    from ._store import MemoryMetricsStore

    store: MetricsStore | None = None
    if history.enabled:
        store = build_store(history)
    manager = None
    if evaluate_alerts and (alerts.rules or alerts.slos):
        manager = AlertManager(alerts, clock=clock)
        if store is None:
            store = MemoryMetricsStore(history.tiers, max_series=history.max_series)
    return PerformanceMonitor(
        recorder,
        pipeline,
        settings=monitoring,
        interval=interval,
        store=store,
        flush_interval=history.flush_interval,
        alerts=manager,
        labels=labels,
        clock=clock,
    )


def scaling_figures(scaler: Any) -> dict[str, float | None] | None:
    """The last scaling step's figures (``None`` without a scaler or before its first step):
    what the history keeps as ``scaling.ready``, ``scaling.target``, ``scaling.forecast``,
    ``scaling.forecast_upper`` and ``scaling.score``."""
    if scaler is None:
        return None
    steps = scaler.snapshot(last=1)["steps"]
    if not steps:
        return None
    step = steps[-1]
    details = step.get("details") or {}
    score = step.get("score") or {}
    return {
        "ready": step.get("ready"),
        "target": step.get("target"),
        "forecast": details.get("forecast"),
        "forecast_upper": details.get("forecast_upper"),
        "score": score.get("score"),
    }
