"""What the local and Ray backends share: replicas that are nodes, added by starting them and
removed by draining them first (no new requests, then wait for the last one) — nothing in
flight is lost."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod

from ..clock import Clock
from ..errors import ScalingError
from ..routing._registry import NodeRegistry
from ._controller import ReplicaStatus
from ._types import check_positive

log = logging.getLogger("prsm.performance.scaling")


async def drain_node(
    registry: NodeRegistry, node_id: str, clock: Clock, *, limit: float, poll: float = 0.05
) -> bool:
    """Mark ``node_id`` draining (the balancer sends it nothing new) and wait until it holds
    no request, at most ``limit`` seconds; True when it emptied in time. A node that is not
    registered is empty."""
    if node_id not in registry:
        return True
    registry.drain(node_id)
    deadline = clock.monotonic() + limit
    while node_id in registry and registry.entry(node_id).in_flight > 0:
        if clock.monotonic() >= deadline:
            log.warning(
                "node %s still holds %d request(s) after %.0fs of draining; stopping it anyway "
                "(the orchestrator retries them on another node)",
                node_id, registry.entry(node_id).in_flight, limit,
            )  # fmt: skip
            return False
        await clock.sleep(poll)
    return True


class NodeReplicas(ABC):
    """A backend whose replicas are registered nodes. Subclasses say which replicas serve
    (:meth:`_serving`), how one starts and registers its node (:meth:`_start_one`, raising
    one of :attr:`start_errors` when it cannot), which to remove (:meth:`_victims`) and how
    a drained one stops (:meth:`_stop`)."""

    name = "replicas"
    start_errors: tuple[type[BaseException], ...] = (ScalingError,)
    stop_errors: tuple[type[BaseException], ...] = (ScalingError, OSError)

    def __init__(
        self, registry: NodeRegistry, clock: Clock, *, drain_timeout: float, poll: float
    ) -> None:
        check_positive("drain_timeout", drain_timeout)
        check_positive("poll", poll)
        self.registry = registry
        self.clock = clock
        self.drain_timeout = drain_timeout
        self.poll = poll
        self._starting = 0
        self._draining: dict[str, asyncio.Task[None]] = {}
        self._lock = asyncio.Lock()

    @abstractmethod
    def _serving(self) -> list[str]:
        """The ids of the replicas that serve (not draining)."""

    def _ready(self) -> int:
        return len(self._serving())

    @abstractmethod
    async def _start_one(self) -> str:
        """Start one replica, register its node; its id."""

    @abstractmethod
    def _victims(self, n: int) -> list[str]:
        """The ``n`` serving replicas to remove."""

    @abstractmethod
    async def _stop(self, node_id: str) -> None:
        """Stop a drained replica."""

    async def status(self) -> ReplicaStatus:
        serving = self._serving()
        ready = self._ready()
        return ReplicaStatus(
            ready=ready,
            starting=self._starting + (len(serving) - ready),
            draining=len(self._draining),
            target=len(serving) + self._starting,
            replicas=tuple(serving),
        )

    async def scale_to(self, replicas: int) -> ReplicaStatus:
        async with self._lock:
            have = len(self._serving())
            if replicas > have:
                await self._add(replicas - have)
            elif replicas < have:
                for node_id in self._victims(have - replicas):
                    self._draining[node_id] = asyncio.create_task(
                        self._drain(node_id), name=f"drain {node_id}"
                    )
        return await self.status()

    async def _add(self, n: int) -> None:
        self._starting += n
        try:
            results = await asyncio.gather(
                *(self._start_one() for _ in range(n)), return_exceptions=True
            )
        finally:
            self._starting -= n
        errors = []
        for r in results:
            if isinstance(r, BaseException):
                if not isinstance(r, self.start_errors):
                    raise r
                errors.append(str(r))
            else:
                log.info("scaled up on %s: %s serves", self.name, r)
        if errors:
            raise ScalingError(self.name, f"{len(errors)} of {n} new replicas failed: {errors[0]}")

    async def _drain(self, node_id: str) -> None:
        try:
            await drain_node(
                self.registry, node_id, self.clock, limit=self.drain_timeout, poll=self.poll
            )
            await self._stop(node_id)
            log.info("scaled down on %s: %s drained and stopped", self.name, node_id)
        except self.stop_errors as exc:  # logged; the node is unregistered all the same
            log.error("stopping %s on %s failed: %s", node_id, self.name, exc)
        finally:
            if node_id in self.registry:
                self.registry.remove(node_id)
            self._draining.pop(node_id, None)

    async def wait_drained(self) -> None:
        """Wait until every drain in progress has finished."""
        while self._draining:
            done, _ = await asyncio.wait(list(self._draining.values()))
            for task in done:
                task.result()  # a drain that failed unexpectedly raises here
