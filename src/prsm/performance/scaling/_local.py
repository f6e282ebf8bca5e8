"""``LocalProcessBackend``: replicas are the local embedding workers (the default backend).

Scaling up starts workers through :meth:`LocalWorkerPool.add_worker`, attaches each to the
:class:`LocalModelUpstream` (its device's shared batcher) and registers it as a node, so the
balancer routes to it at once. Scaling down picks the least busy workers and drains each in
the background: the node takes no new request, the requests it holds finish (the registry's
in-flight count reaches zero), its batches finish, and only then its process stops and the
node is removed — nothing in flight is lost.
"""

from __future__ import annotations

import asyncio
import logging

from ..clock import Clock, SystemClock
from ..errors import ScalingError, WorkerError
from ..routing._registry import NodeRegistry
from ..workers._pool import LocalWorkerPool
from ..workers._upstream import LocalModelUpstream
from ._controller import ReplicaStatus
from ._drain import drain_node, forget_node
from ._types import check_positive

log = logging.getLogger("prsm.performance.scaling")


class LocalProcessBackend:
    """See the module docstring. ``drain_timeout`` bounds the wait for a node's requests."""

    name = "local"

    def __init__(
        self,
        pool: LocalWorkerPool,
        upstream: LocalModelUpstream,
        registry: NodeRegistry,
        *,
        drain_timeout: float = 120.0,
        poll: float = 0.05,
        clock: Clock | None = None,
    ) -> None:
        check_positive("drain_timeout", drain_timeout)
        check_positive("poll", poll)
        self.pool = pool
        self.upstream = upstream
        self.registry = registry
        self.drain_timeout = drain_timeout
        self.poll = poll
        self.clock = clock or SystemClock()
        self._starting = 0
        self._draining: dict[str, asyncio.Task[None]] = {}
        self._lock = asyncio.Lock()

    def _serving(self) -> list[str]:
        return [w.id for w in self.pool.workers if w.id not in self._draining]

    async def status(self) -> ReplicaStatus:
        serving = self._serving()
        ready = sum(1 for w in self.pool.ready() if w.id in serving)
        return ReplicaStatus(
            ready=ready,
            starting=self._starting + (len(serving) - ready),
            draining=len(self._draining),
            target=len(serving) + self._starting,
            replicas=tuple(serving),
        )

    async def scale_to(self, replicas: int) -> ReplicaStatus:
        async with self._lock:
            serving = self._serving()
            if replicas > len(serving):
                await self._add(replicas - len(serving))
            elif replicas < len(serving):
                self._remove(len(serving) - replicas)
        return await self.status()

    async def _add(self, n: int) -> None:
        self._starting += n
        try:
            results = await asyncio.gather(
                *(self.pool.add_worker() for _ in range(n)), return_exceptions=True
            )
        finally:
            self._starting -= n
        errors = []
        for r in results:
            if isinstance(r, BaseException):
                if not isinstance(r, (WorkerError, OSError)):
                    raise r
                errors.append(str(r))
                continue
            self.upstream.attach(r)
            [spec] = [s for s in self.pool.nodes() if s.id == r.id]
            self.registry.upsert(spec)
            log.info("scaled up: worker %s serves as node %s", r.id, spec.id)
        if errors:
            raise ScalingError(self.name, f"{len(errors)} of {n} new workers failed: {errors[0]}")

    def _remove(self, n: int) -> None:
        by_load = sorted(
            (w for w in self.pool.workers if w.id not in self._draining),
            key=lambda w: (w.state == "ready", w.in_flight, -self.pool.workers.index(w)),
        )
        for w in by_load[:n]:
            self._draining[w.id] = asyncio.create_task(self._drain(w.id), name=f"drain {w.id}")

    async def _drain(self, worker_id: str) -> None:
        try:
            await drain_node(
                self.registry, worker_id, self.clock, limit=self.drain_timeout, poll=self.poll
            )
            self.upstream.detach(worker_id)
            worker = self.pool.worker(worker_id)
            deadline = self.clock.monotonic() + self.drain_timeout
            while worker.in_flight > 0 and self.clock.monotonic() < deadline:
                await self.clock.sleep(self.poll)
            await self.pool.remove_worker(worker_id)
            forget_node(self.registry, worker_id)
            log.info("scaled down: worker %s drained and stopped", worker_id)
        finally:
            self._draining.pop(worker_id, None)

    async def wait_drained(self) -> None:
        """Wait until every drain in progress has finished."""
        while self._draining:
            await asyncio.gather(*list(self._draining.values()), return_exceptions=True)

    async def close(self) -> None:
        await self.wait_drained()
