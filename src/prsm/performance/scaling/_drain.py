"""Draining a node before its replica stops: no new requests, then wait for the last one."""

from __future__ import annotations

import logging

from ..clock import Clock
from ..routing._registry import NodeRegistry

log = logging.getLogger("prsm.performance.scaling")


async def drain_node(
    registry: NodeRegistry, node_id: str, clock: Clock, *, limit: float, poll: float = 0.05
) -> bool:
    """Mark ``node_id`` draining (the balancer sends it nothing new) and wait until it holds
    no request, at most ``limit`` seconds; True when it emptied in time. A node that is
    not registered is empty."""
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


def forget_node(registry: NodeRegistry, node_id: str) -> None:
    """Unregister ``node_id`` if it is registered."""
    if node_id in registry:
        registry.remove(node_id)
