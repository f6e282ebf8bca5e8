"""A brute-force reference of the routing strategies, for the property tests only.

It knows nothing of the balancer's groups, heaps, tombstones or timers: for each pick it lists
every registered node in registration order, filters the capable and eligible ones from the
readings the registry and the tracker expose, computes each key from the shared math in
``routing._scoring`` (itself checked against the post's numbers) and scans. Round-robin
cursors are node registration numbers, so they survive nodes coming and going.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field

from prsm.performance.routing._balancer import AILoadBalancer
from prsm.performance.routing._entry import NodeEntry
from prsm.performance.routing._node import NodeState
from prsm.performance.routing._registry import GroupKey, NodeRegistry
from prsm.performance.routing._scoring import entry_load, intelligent_score, wrr_schedule
from prsm.performance.types import AIRequest


@dataclass
class Reference:
    """The reference's memory: breaker blocks (as told to the balancer) and, per request
    shape, the registration number after which round robin continues."""

    blocked: dict[str, float] = field(default_factory=dict)
    probe: set[str] = field(default_factory=set)  # once blocked, not yet told 0: due a probe
    cursor: dict[GroupKey, int] = field(default_factory=dict)
    wrr_pos: dict[GroupKey, int] = field(default_factory=dict)

    def block(self, node_id: str, until: float) -> None:
        if until <= 0:
            self.blocked.pop(node_id, None)
            self.probe.discard(node_id)
        else:
            self.blocked[node_id] = until
            self.probe.add(node_id)

    def key(
        self, b: AILoadBalancer, e: NodeEntry, now: float, strategy: str, request: AIRequest
    ) -> float:
        """The node's key for ``request``: infinite when it is due a probe (never for a
        stream), else the strategy's."""
        if e.id in self.probe and not request.stream:
            return math.inf
        return key(b, e, now, strategy)

    def redraw_schedules(self) -> None:
        """The registry's request shapes changed (a spec update, a new set of context
        sizes): weighted schedules are drawn again (round-robin rotations go on)."""
        self.wrr_pos.clear()

    def membership_changed(self, e: NodeEntry, registry: NodeRegistry) -> None:
        """``e`` came or went: a weighted schedule it belongs to is drawn again."""
        for shape_key in list(self.wrr_pos):
            if NodeRegistry.matches(shape_key, e):  # type: ignore[arg-type]
                del self.wrr_pos[shape_key]


def capable(b: AILoadBalancer, e: NodeEntry, request: AIRequest) -> bool:
    if not request.capabilities_needed <= e.caps:
        return False
    ctx, limit = request.context_tokens, e.spec.max_context
    return not (ctx and limit and limit < ctx)


def eligible(ref: Reference, e: NodeEntry, now: float, exclude: Collection[str]) -> bool:
    return (
        e.state is NodeState.ACTIVE
        and e.in_flight < e.capacity
        and ref.blocked.get(e.id, 0.0) <= now
        and e.id not in exclude
    )


def key(b: AILoadBalancer, e: NodeEntry, now: float, strategy: str) -> float:
    s = b.settings
    if strategy == "intelligent":
        perf = b.tracker.stats(e.id).performance(s.latency_scale)
        return intelligent_score(perf, entry_load(e, now, s), s)
    if strategy in ("least_loaded", "power_of_two"):
        return 1.0 - entry_load(e, now, s)
    if strategy == "latency":
        return -b.tracker.latency(e.id)
    return 0.0


def shape(b: AILoadBalancer, request: AIRequest) -> GroupKey:
    """The request's shape: requests whose context needs fit the same registered sizes
    share one rotation."""
    return b.registry.group_key(
        request.model, request.required_capabilities, request.context_tokens
    )


def choose(
    ref: Reference,
    b: AILoadBalancer,
    request: AIRequest,
    now: float,
    exclude: Collection[str] = (),
) -> str | None:
    """The node id the strategy must pick (``None``: none can be), for the deterministic
    strategies; power of two is checked by its properties instead."""
    strategy = b.strategy
    members = [e for e in b.registry.entries() if capable(b, e, request)]
    ok = [eligible(ref, e, now, exclude) for e in members]
    if not any(ok):
        return None
    if strategy == "round_robin":
        last = ref.cursor.get(shape(b, request), -1)
        after = [e for e, good in zip(members, ok, strict=True) if good and e.seq > last]
        pick = after[0] if after else next(e for e, g in zip(members, ok, strict=True) if g)
        ref.cursor[shape(b, request)] = pick.seq
        return pick.id
    if strategy == "weighted_round_robin":
        schedule = wrr_schedule([e.spec.weight for e in members])
        start = ref.wrr_pos.get(shape(b, request), 0)
        for step in range(len(schedule)):
            pos = (start + step) % len(schedule)
            if ok[schedule[pos]]:
                ref.wrr_pos[shape(b, request)] = pos + 1
                return members[schedule[pos]].id
        raise AssertionError("unreachable: some member is eligible")
    best_id, best_key = None, -math.inf
    for e, good in zip(members, ok, strict=True):
        if good:
            k = ref.key(b, e, now, strategy, request)
            if best_id is None or k > best_key:
                best_id, best_key = e.id, k
    return best_id
