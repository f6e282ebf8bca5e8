"""The node poller: every node's load, read off the request path.

Each :meth:`NodePoller.tick` (the orchestrator's monitoring loop calls it every
``monitoring_interval``) does three things and returns at once:

1. reads the local sources (the model workers report their processes' cpu, memory and
   their batcher's queue) into the registry;
2. queues a poll of every remote node that is due: its ``/metrics`` (see
   :func:`~._fetch.metrics_url`) is fetched by one of ``poll_concurrency`` worker tasks,
   each fetch bounded by ``poll_timeout``; the answer is read by :mod:`._exposition` and
   stored with its time (:meth:`NodeRegistry.update_metrics`). A node being polled is not
   queued again, so a slow node never piles up polls;
3. refreshes the per-node gauges.

A failed poll (no answer in time, refused, HTTP 5xx, malformed) is recorded on the node
(:meth:`NodeRegistry.poll_failed`: its error and count show in the snapshot and the admin
node list) and counted; the node is polled again after ``interval · 2^(failures−1)`` seconds
(at most ``poll_max_backoff``, jittered by the injected ``random.Random``), while its last
reading ages as :mod:`prsm.performance.routing._scoring` describes. A node that publishes no
load metrics (HTTP 404, or none of the known names) is asked again every ``poll_recheck``
seconds and scored from what the gateway sees of it.

Metrics (prefix ``prsm_``): ``node_load{node}`` (the load routing uses),
``node_load_signal_age_seconds{node}`` (``+Inf`` when never read),
``node_load_signal_weight{node}`` (1 fresh … 0 stale) and
``node_load_polls_total{node,outcome}`` (``ok``, ``error``, ``unsupported``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Mapping
from typing import Any, Protocol

from ..clock import Clock
from ..monitoring._registry import MetricsRegistry
from ..routing._node import NodeMetrics
from ..routing._registry import NodeRegistry
from ..routing._scoring import entry_load, signal_weight
from ..routing._settings import BalancerSettings
from ._exposition import read_exposition
from ._fetch import HttpMetricsFetcher, MetricsFetcher, metrics_url

log = logging.getLogger("prsm.performance.nodeload")

OUTCOMES = ("ok", "error", "unsupported")
#: HTTP answers that mean "nothing published here" rather than "failing"
_UNSUPPORTED = frozenset({401, 403, 404, 405, 410, 501})


class LoadSource(Protocol):
    """Something that knows some nodes' load right now (local model workers)."""

    def node_metrics(self) -> Mapping[str, NodeMetrics]: ...


class NodePoller:
    """Keeps the registry's load readings current; see the module's docstring."""

    def __init__(
        self,
        registry: NodeRegistry,
        settings: BalancerSettings | None = None,
        *,
        interval: float = 1.0,
        fetcher: MetricsFetcher | None = None,
        metrics: MetricsRegistry | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval: must be > 0 seconds, got {interval!r}")
        self.registry = registry
        self.settings = settings or BalancerSettings()
        self.interval = interval
        self.fetcher: MetricsFetcher = fetcher if fetcher is not None else HttpMetricsFetcher()
        self.clock = clock or registry.clock
        self.rng = rng or random.Random()
        self.sources: list[tuple[str, LoadSource]] = []
        self._due: dict[str, float] = {}
        self._busy: set[str] = set()
        self._queue: asyncio.Queue[str] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._polled: set[str] = set()
        self._urls: set[str] = set()
        self._pruning: asyncio.Task[None] | None = None
        m = metrics if metrics is not None else MetricsRegistry()
        self._m_load = m.gauge("node_load", "The load routing uses per node (0 to 1).", ["node"])
        self._m_age = m.gauge(
            "node_load_signal_age_seconds",
            "Age of each node's last load reading (+Inf: never read).",
            ["node"],
        )
        self._m_weight = m.gauge(
            "node_load_signal_weight",
            "Weight of each node's last load reading: 1 fresh, 0 stale.",
            ["node"],
        )
        self._m_polls = m.counter(
            "node_load_polls", "Polls of node metrics, by outcome.", ["node", "outcome"]
        )
        self._gauged: set[str] = set()

    # -- sources ---------------------------------------------------------------------------

    def add_source(self, source: LoadSource, name: str = "local") -> None:
        """Read ``source`` every tick; its readings are stored with ``name`` as their source."""
        self.sources.append((name, source))

    def targets(self) -> dict[str, str]:
        """Node id → metrics URL of every node to poll."""
        out = {}
        for e in self.registry.entries():
            spec = e.spec
            if spec.meta.get("upstream") and spec.metrics_url is None:
                continue  # served in-process (local workers): they report through a source
            url = metrics_url(spec.url, spec.metrics_url)
            if url is not None:
                out[e.id] = url
        return out

    # -- the tick --------------------------------------------------------------------------

    def tick(self) -> None:
        """Read the local sources, queue the polls that are due, refresh the gauges; returns
        at once (the polls run on the poller's own tasks)."""
        now = self.clock.monotonic()
        self._read_sources(now)
        self._queue_due(now)
        self.refresh_gauges(now)

    async def poll_once(self) -> None:
        """One tick, then wait until every poll it queued has finished and refresh the
        gauges (tests, tools)."""
        self.tick()
        if self._queue is not None:
            await self._queue.join()
            self.refresh_gauges()

    def _read_sources(self, now: float) -> None:
        registry = self.registry
        for name, source in self.sources:
            for node_id, reading in source.node_metrics().items():
                if node_id in registry:
                    registry.update_metrics(node_id, reading, source=name, now=now)

    def _queue_due(self, now: float) -> None:
        targets = self.targets()
        for gone in [n for n in self._due if n not in targets]:
            del self._due[gone]
        urls = set(targets.values())
        if urls != self._urls and (self._pruning is None or self._pruning.done()):
            self._urls = urls  # close the connections of origins no longer polled
            self._pruning = asyncio.get_running_loop().create_task(self.fetcher.retain(urls))
        if not targets:
            return
        if self._queue is None:
            self._queue = asyncio.Queue()
            loop = asyncio.get_running_loop()
            self._workers = [
                loop.create_task(self._work(), name=f"node poller {i}")
                for i in range(min(self.settings.poll_concurrency, 1024))
            ]
        for node_id in targets:
            if node_id in self._busy or self._due.get(node_id, now) > now:
                continue
            self._busy.add(node_id)
            self._queue.put_nowait(node_id)

    async def _work(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            node_id = await queue.get()
            try:
                await self._poll(node_id)
            finally:
                self._busy.discard(node_id)
                queue.task_done()

    # -- one poll --------------------------------------------------------------------------

    async def _poll(self, node_id: str) -> None:
        if node_id not in self.registry:
            return
        entry = self.registry.entry(node_id)
        url = metrics_url(entry.spec.url, entry.spec.metrics_url)
        if url is None:
            return
        timeout = self.settings.poll_timeout
        try:
            async with asyncio.timeout(timeout):
                status, body = await self.fetcher.get(url)
        except TimeoutError:
            self._failed(node_id, f"no answer from {url} within {timeout}s")
            return
        except OSError as exc:  # refused, reset, unreachable: ConnectionError is one
            self._failed(node_id, f"{url}: {type(exc).__name__}: {exc}")
            return
        if status in _UNSUPPORTED:
            self._unsupported(node_id, f"publishes no metrics (HTTP {status} at {url})")
            return
        if status != 200:
            self._failed(node_id, f"HTTP {status} from {url}")
            return
        try:
            reading = read_exposition(body.decode("utf-8", "replace"), entry.spec.max_concurrency)
        except ValueError as exc:
            self._failed(node_id, f"{url}: {exc}")
            return
        if reading is None:
            self._unsupported(node_id, f"publishes no load metrics we know at {url}")
            return
        if node_id in self.registry:  # it may have been removed while we waited
            self.registry.update_metrics(
                node_id, reading.metrics, source=reading.source, now=self.clock.monotonic()
            )
            self._due.pop(node_id, None)
            self._count(node_id, "ok")

    def _failed(self, node_id: str, error: str) -> None:
        now = self.clock.monotonic()
        self.registry.poll_failed(node_id, error, now)
        if node_id not in self.registry:
            return
        failures = self.registry.entry(node_id).poll_failures
        delay = min(self.settings.poll_max_backoff, self.interval * 2.0 ** (failures - 1))
        self._due[node_id] = now + delay * (0.5 + 0.5 * self.rng.random())
        self._count(node_id, "error")
        if failures == 1:
            log.warning("load poll of node %s failed: %s", node_id, error)

    def _unsupported(self, node_id: str, why: str) -> None:
        now = self.clock.monotonic()
        self.registry.poll_failed(node_id, why, now)
        self._due[node_id] = now + self.settings.poll_recheck
        self._count(node_id, "unsupported")

    def _count(self, node_id: str, outcome: str) -> None:
        if node_id in self.registry:
            self._polled.add(node_id)
            self._m_polls.labels(node_id, outcome).inc()

    # -- gauges ----------------------------------------------------------------------------

    def refresh_gauges(self, now: float | None = None) -> None:
        """Set every node's load, reading age and reading weight; drop removed nodes'
        series."""
        at = self.clock.monotonic() if now is None else now
        s = self.settings
        seen = set()
        for e in self.registry.entries():
            seen.add(e.id)
            self._m_load.labels(e.id).set(entry_load(e, at, s))
            age = math.inf if e.reported_at is None else max(0.0, at - e.reported_at)
            self._m_age.labels(e.id).set(age)
            self._m_weight.labels(e.id).set(signal_weight(e.reported_at, at, s))
        for gone in self._gauged - seen:
            for gauge in (self._m_load, self._m_age, self._m_weight):
                gauge.remove(gone)
        for gone in self._polled - seen:
            for outcome in OUTCOMES:
                self._m_polls.remove(gone, outcome)
        self._polled &= seen
        self._gauged = seen

    def describe(self) -> dict[str, Any]:
        """What the poller is doing: targets, nodes in flight and their next poll times."""
        return {
            "targets": self.targets(),
            "polling": sorted(self._busy),
            "next_poll": dict(self._due),
            "sources": [name for name, _ in self.sources],
        }

    async def aclose(self) -> None:
        """Stop the poll tasks and close the fetcher's connections."""
        workers, self._workers = self._workers, []
        for task in workers:
            task.cancel()
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)
        self._queue = None
        self._busy.clear()
        if self._pruning is not None:
            await self._pruning
        await self.fetcher.aclose()
