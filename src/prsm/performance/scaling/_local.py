"""``LocalProcessBackend``: replicas are the local embedding workers (the default backend).

Scaling up starts workers through :meth:`LocalWorkerPool.add_worker`, attaches each to the
:class:`LocalModelUpstream` (its device's shared batcher) and registers it as a node, so the
balancer routes to it at once. Scaling down picks the least busy workers and drains each in
the background: the node takes no new request, the requests it holds finish (the registry's
in-flight count reaches zero), its batches finish, and only then its process stops and the
node is removed — nothing in flight is lost.
"""

from __future__ import annotations

from ..clock import Clock, SystemClock
from ..errors import WorkerError
from ..routing._registry import NodeRegistry
from ..workers._pool import LocalWorkerPool
from ..workers._upstream import LocalModelUpstream
from ._drain import NodeReplicas


class LocalProcessBackend(NodeReplicas):
    """See the module docstring. ``drain_timeout`` bounds the wait for a node's requests."""

    name = "local"
    start_errors = (WorkerError, OSError)
    stop_errors = (WorkerError, OSError)

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
        super().__init__(registry, clock or SystemClock(), drain_timeout=drain_timeout, poll=poll)
        self.pool = pool
        self.upstream = upstream

    def _serving(self) -> list[str]:
        return [w.id for w in self.pool.workers if w.id not in self._draining]

    def _ready(self) -> int:
        return sum(1 for w in self.pool.ready() if w.id not in self._draining)

    async def _start_one(self) -> str:
        worker = await self.pool.add_worker()
        self.upstream.attach(worker)
        [spec] = [s for s in self.pool.nodes() if s.id == worker.id]
        self.registry.upsert(spec)
        return worker.id

    def _victims(self, n: int) -> list[str]:
        workers = [w for w in self.pool.workers if w.id not in self._draining]
        order = sorted(workers, key=lambda w: (w.state == "ready", w.in_flight, -workers.index(w)))
        return [w.id for w in order[:n]]

    async def _stop(self, node_id: str) -> None:
        self.upstream.detach(node_id)  # no new batches; the ones it runs finish
        worker = self.pool.worker(node_id)
        deadline = self.clock.monotonic() + self.drain_timeout
        while worker.in_flight > 0 and self.clock.monotonic() < deadline:
            await self.clock.sleep(self.poll)
        await self.pool.remove_worker(node_id)

    async def close(self) -> None:
        await self.wait_drained()
