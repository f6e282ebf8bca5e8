"""A pool of local embedding workers: start them, watch them, restart the ones that die.

Each worker gets a supervisor task (restart after exit, with doubling back-off) and a health
task (a ping every ``health_interval``; a worker silent for ``health_timeout`` is killed and so
restarted). Each worker is exposed as a :class:`~prsm.performance.routing.NodeSpec` with
the ``embeddings`` capability, so the balancer, breakers and metrics treat it like any node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..clock import Clock, SystemClock
from ..embeddings._model import MODEL_NAME
from ..errors import WorkerError
from ..gpu._requirements import GPURequirements
from ..monitoring._registry import MetricsRegistry
from ..routing._node import NodeSpec
from ..types import AIRequest, RequestKind
from ._process import WorkerProcess

if TYPE_CHECKING:
    from ..gpu import GPUResourceManager
from ._settings import WorkerSettings, usable_cores

log = logging.getLogger("prsm.performance.workers")

CAPABILITY = "embeddings"
UPSTREAM_TAG = "local"


class LocalWorkerPool:
    """``count`` worker processes, each holding all-MiniLM-L6-v2.

    ``devices`` gives each worker its device (``"cpu"``, ``"cuda:0"``…); by default every
    worker gets ``settings.device``, and ``auto`` asks the GPU manager (``gpu``, or one made
    on the real NVML) to place each worker by memory (best fit), falling back to the CPU
    with one "no GPU" line.
    """

    def __init__(
        self,
        settings: WorkerSettings | None = None,
        *,
        devices: Sequence[str] | None = None,
        gpu: GPUResourceManager | None = None,
        metrics: MetricsRegistry | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings or WorkerSettings()
        count = self.settings.count
        if devices is not None and len(devices) != count:
            raise ValueError(f"devices: {len(devices)} given for {count} workers")
        self._fixed_devices = list(devices) if devices is not None else None
        self._gpu = gpu
        self._allocated: list[str] = []
        self._clock = clock or SystemClock()
        threads = self.settings.threads or max(1, usable_cores() // max(1, count))
        self.workers = [
            WorkerProcess(
                f"local-embed-{i}",
                device="cpu",
                threads=threads,
                model_dir=self.settings.model_dir,
                encode_batch_size=self.settings.encode_batch_size,
                start_timeout=self.settings.start_timeout,
                batch_timeout=self.settings.batch_timeout,
            )
            for i in range(count)
        ]
        self._by_id = {w.id: w for w in self.workers}
        self._tasks: list[asyncio.Task[None]] = []
        self._tasks_of: dict[str, list[asyncio.Task[None]]] = {}
        self._next_index = count
        self._closing = False
        self._started = False
        m = metrics or MetricsRegistry()
        self._m_restarts = m.counter("worker_restarts", "Local worker restarts", ["worker"])
        self._m_ready = m.gauge("workers_ready", "Local workers ready to serve")

    # -- life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every worker and wait until all are ready (:class:`WorkerError` if one fails)."""
        if self._started:
            return
        self._started = True
        for w, device in zip(self.workers, await self._devices(), strict=True):
            w.requested_device = w.device = device
        results = await asyncio.gather(*(w.start() for w in self.workers), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await self.close()
            first = failed[0]
            if isinstance(first, WorkerError):
                raise first
            raise WorkerError("pool", f"start failed: {first!r}") from first
        self._m_ready.set(len(self.workers))
        for w in self.workers:
            self._watch(w)

    def _watch(self, w: WorkerProcess) -> None:
        tasks = [
            asyncio.create_task(self._supervise(w), name=f"supervise {w.id}"),
            asyncio.create_task(self._health(w), name=f"health {w.id}"),
        ]
        self._tasks.extend(tasks)
        self._tasks_of[w.id] = tasks

    async def add_worker(self, device: str | None = None) -> WorkerProcess:
        """Start one more worker (a new id) on ``device`` (default: the settings' device,
        the CPU for ``auto``), wait until it is ready and supervise it like the others;
        :class:`WorkerError` if it cannot start (nothing is added then)."""
        if not self._started or self._closing:
            raise WorkerError("pool", "start the pool before adding workers")
        place = device or (self.settings.device if self.settings.device != "auto" else "cpu")
        w = WorkerProcess(
            f"local-embed-{self._next_index}",
            device=place,
            threads=self.settings.threads or max(1, usable_cores() // (len(self.workers) + 1)),
            model_dir=self.settings.model_dir,
            encode_batch_size=self.settings.encode_batch_size,
            start_timeout=self.settings.start_timeout,
            batch_timeout=self.settings.batch_timeout,
        )
        self._next_index += 1
        try:
            await w.start()
        except (WorkerError, OSError) as exc:
            await w.stop()
            if isinstance(exc, WorkerError):
                raise
            raise WorkerError(w.id, f"start failed: {exc!r}") from exc
        self.workers.append(w)
        self._by_id[w.id] = w
        self._watch(w)
        self._m_ready.set(len(self.ready()))
        return w

    async def remove_worker(self, worker_id: str, *, grace: float = 5.0) -> None:
        """Stop supervising ``worker_id`` and stop its process (callers drain it first: what
        it still runs fails with :class:`WorkerError`)."""
        w = self.worker(worker_id)
        tasks = self._tasks_of.pop(worker_id, [])
        for task in tasks:
            task.cancel()
            if task in self._tasks:
                self._tasks.remove(task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await w.stop(grace)
        self.workers.remove(w)
        del self._by_id[worker_id]
        self._m_ready.set(len(self.ready()))

    async def close(self) -> None:
        """Stop supervising and stop every worker."""
        self._closing = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(w.stop() for w in self.workers), return_exceptions=True)
        self._m_ready.set(0)
        if self._gpu is not None:
            for name in self._allocated:
                self._gpu.release(name)
        self._allocated = []

    async def _devices(self) -> list[str]:
        if self._fixed_devices is not None:
            return self._fixed_devices
        if self.settings.device != "auto":
            return [self.settings.device] * len(self.workers)
        if self._gpu is None:
            from ..gpu import GPUResourceManager

            self._gpu = GPUResourceManager()
        if not self._gpu.available:
            return ["cpu"] * len(self.workers)
        devices = []
        for w in self.workers:
            try:
                async with asyncio.timeout(min(10.0, self.settings.start_timeout)):
                    alloc = await self._gpu.allocate_gpu_resources(
                        AIRequest(model=MODEL_NAME, kind=RequestKind.EMBEDDING),
                        GPURequirements(self.settings.gpu_memory_mb, name=w.id, source="workers"),
                    )
            except TimeoutError:
                log.warning(
                    "no GPU has %d MiB free for %s; running it on CPU",
                    self.settings.gpu_memory_mb,
                    w.id,
                )
                devices.append("cpu")
                continue
            self._allocated.append(w.id)
            log.info("%s placed on %s (%s)", w.id, alloc.device, alloc.reason)
            devices.append(alloc.device)
        return devices

    async def __aenter__(self) -> LocalWorkerPool:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- lookups ----------------------------------------------------------------------------
    def worker(self, worker_id: str) -> WorkerProcess:
        try:
            return self._by_id[worker_id]
        except KeyError:
            raise WorkerError(worker_id, f"no such worker; have {sorted(self._by_id)}") from None

    def nodes(self, *, max_concurrency: int | None = None) -> list[NodeSpec]:
        """One node per worker: ``embeddings`` capability, the model and its aliases."""
        limit = max_concurrency or self.settings.batcher.max_queue_size
        return [
            NodeSpec(
                id=w.id,
                models=frozenset(self.settings.served_models),
                capabilities=frozenset({CAPABILITY}),
                max_concurrency=limit,
                meta={"upstream": UPSTREAM_TAG, "worker": w.id, "device": w.device},
            )
            for w in self.workers
        ]

    def ready(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.state == "ready"]

    def stats(self) -> dict[str, Any]:
        return {
            w.id: {
                "state": w.state,
                "pid": w.pid,
                "device": w.device,
                "starts": w.starts,
                "last_exit": w.last_exit,
                "in_flight_calls": w.in_flight,
                "batches": w.batches,
                "threads": w.threads,
            }
            for w in self.workers
        }

    # -- supervision ------------------------------------------------------------------------
    async def _supervise(self, w: WorkerProcess) -> None:
        backoff = self.settings.restart_backoff
        while not self._closing:
            code = await w.exited()
            if self._closing:
                return
            self._m_ready.set(len(self.ready()))
            self._m_restarts.labels(w.id).inc()
            log.warning("worker %s exited with code %s; restarting in %.1fs", w.id, code, backoff)
            await self._clock.sleep(backoff)
            if self._closing:
                return
            try:
                await w.start()
                backoff = self.settings.restart_backoff
            except (WorkerError, OSError) as exc:  # logged; the loop tries again, backing off
                log.error("worker %s failed to restart: %s", w.id, exc)
                backoff = min(backoff * 2, self.settings.max_restart_backoff)
            self._m_ready.set(len(self.ready()))

    async def _health(self, w: WorkerProcess) -> None:
        while not self._closing:
            await self._clock.sleep(self.settings.health_interval)
            if w.state != "ready":
                continue
            try:
                await w.ping(self.settings.health_timeout)
            except WorkerError as exc:
                log.warning("worker %s failed its health check: %s", w.id, exc)
                w.kill()
