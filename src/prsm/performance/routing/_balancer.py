"""The load balancer: capability filter → exclusion (draining, full, breaker open) → strategy.

This is the one implementation of every routing strategy (their math is in :mod:`.scoring`;
the tests check it against a brute-force reference that lives with them).

Each distinct request shape (model, required capabilities, context size) gets a *group*
(:mod:`._group`): its capable nodes and one key per node, kept up to date incrementally by
the balancer's base (:mod:`._keys`), an excluded node's key being ``-inf``. A pick reads the
top of a lazy max-heap for the argmax strategies (``O(log n)`` per change, no scan) and steps
a cursor for the round-robin ones, so it costs about the same at 10 and 1,000 nodes; no pick
loops over the nodes in Python. This module holds the picking and the inspection.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from ..errors import NoCapableNodesError, UnknownModelError
from ..types import AIRequest
from ._entry import NodeEntry
from ._group import Group, excluded_keys
from ._keys import PROBE, BalancerKeys
from ._node import NodeSpec, NodeState
from ._scoring import (
    ARGMAX_STRATEGIES,
    EXCLUDED,
    entry_load,
    intelligent_score,
    signal_state,
    signal_weight,
)
from ._settings import check_strategy


class AILoadBalancer(BalancerKeys):
    """Routes requests to nodes (the source post's ``AILoadBalancer``).

    ``route_request(request)`` returns the chosen :class:`NodeSpec`; ``pick(request, now)``
    is the same without ``await`` for drivers that already hold ``now``. Nodes that lack a
    required capability, are draining, are full (in-flight at capacity) or whose breaker
    refuses calls are never picked (and a node whose breaker is due a probe is picked before any
    other, see :meth:`set_blocked`); when none is left, :class:`NoCapableNodesError` names the
    required and offered capabilities and why each capable node was excluded.

    The registry adopts the balancer's clock unless it has its own, so the age of a reading
    is measured on the clock picks are made with.
    """

    # -- configuration ---------------------------------------------------------------------

    def set_strategy(self, strategy: str) -> None:
        """Switch strategy (keys are rebuilt on the next pick)."""
        self.strategy = check_strategy(strategy)
        self._set_keyfn()
        self._drop_groups()
        self._rr_last.clear()

    # -- why a node is excluded ------------------------------------------------------------

    def _excluded(self, e: NodeEntry, now: float) -> str | None:
        if e.state is NodeState.DRAINING:
            return "draining"
        if e.in_flight >= e.capacity:
            return f"full ({e.in_flight}/{e.capacity} in flight)"
        until = self._blocked.get(e.id)
        if until is not None and until > now:
            if until == math.inf:
                return "breaker half-open, probes at their limit"
            return f"breaker open, {until - now:.3f}s left"
        return None

    # -- picking ---------------------------------------------------------------------------

    async def route_request(self, request: AIRequest) -> NodeSpec:
        """The node to send ``request`` to (the source post's call)."""
        return self.pick(request, self.clock.monotonic())

    def pick(
        self, request: AIRequest, now: float, exclude: Collection[str] | None = None
    ) -> NodeSpec:
        """The node ``request`` goes to at time ``now``, never one in ``exclude``."""
        self._now = now
        if now >= self._next_timer:
            self._fire_timers(now)
        if self._dirty:
            self._flush()
        ctx = request.context_tokens
        key = (
            request.model,
            request.required_capabilities,
            self.registry.context_threshold(ctx) if ctx else 0,
        )
        g = self._groups.get(key)
        if g is None:
            g = self._group(key)
        keys = g.keys
        # (the lists below are made by helpers: a comprehension here would make ``pick``'s
        # names it reads closure cells, made on every call)
        if exclude:
            keys = excluded_keys(g, keys, exclude)
        if request.stream and self._probe and PROBE in keys:
            # A stream is not made the probe: once its first chunk has gone out it cannot
            # move to another node, so a failed probe would cut it. It ranks the node by its
            # ordinary key; the next unary request (retried elsewhere if it fails) probes.
            keys = self._unprobed(g, keys, now)
        i = self._choose(g, keys)
        if i < 0:
            raise self._no_capable(request, g, exclude)
        entry = g.members[i]
        assert entry is not None
        if keys[i] == PROBE:
            self._probing[entry.id] = None
        return entry.spec

    def _unprobed(self, g: Group, keys: list[float], now: float) -> list[float]:
        """``keys`` with each probe's key replaced by the node's ordinary key."""
        return [
            self._keyfn(m, now) if k == PROBE and m is not None else k
            for m, k in zip(g.members, keys, strict=True)
        ]

    def end_probe(self, node_id: str, *, failed: bool = False) -> bool:
        """Whether ``node_id``'s last pick was a probe (forgotten once asked): the caller
        restores the node's learned figures when that probe succeeded. A ``failed`` probe
        makes the node due its next one :attr:`reprobe_after` after this outcome."""
        if self._probing.pop(node_id, 0) is not None:
            return False
        if failed:
            self._reprobe[node_id] = None
        else:
            self._reprobe.pop(node_id, None)
        return True

    def _choose(self, g: Group, keys: list[float]) -> int:
        strategy = self.strategy
        if strategy in ARGMAX_STRATEGIES:
            if not keys:
                return -1
            if strategy == "latency" and self.rng.random() < self.settings.latency_explore:
                eligible = [i for i, k in enumerate(keys) if k != EXCLUDED]
                return self.rng.choice(eligible) if eligible else -1
            if keys is g.keys:
                return g.best()
            best = max(keys)  # a retry's exclusions: a one-off list
            return -1 if best == EXCLUDED else keys.index(best)
        n = len(keys)
        if strategy == "round_robin":
            start = g.cursor
            for step in range(n):
                i = (start + step) % n
                if keys[i] != EXCLUDED:
                    g.cursor = i + 1
                    rr_last = self._rr_last
                    if len(rr_last) > 2 * self.settings.max_cached_groups:
                        rr_last.clear()
                    rr_last[g.key] = g.members[i].seq  # type: ignore[union-attr]
                    return i
            return -1
        if strategy == "weighted_round_robin":
            schedule = g.schedule
            m = len(schedule)
            start = g.cursor
            for step in range(m):
                pos = (start + step) % m
                i = schedule[pos]
                if keys[i] != EXCLUDED:
                    g.cursor = pos + 1
                    return i
            return -1
        return self._power_of_two(keys)

    def _power_of_two(self, keys: list[float]) -> int:
        """Two random eligible members; the less loaded wins (the first drawn on a tie)."""
        n = len(keys)
        if n == 0:
            return -1
        rand = self.rng.randrange
        a = b = -1
        for _ in range(8):
            j = rand(n)
            if keys[j] != EXCLUDED and j != a:
                if a < 0:
                    a = j
                else:
                    b = j
                    break
        if b < 0:
            eligible = [i for i, k in enumerate(keys) if k != EXCLUDED and i != a]
            if a < 0 and not eligible:
                return -1
            if not eligible:
                return a
            if a < 0:
                if len(eligible) == 1:
                    return eligible[0]
                a, b = self.rng.sample(eligible, 2)
            else:
                b = self.rng.choice(eligible)
        return a if keys[a] >= keys[b] else b

    def _no_capable(
        self, request: AIRequest, g: Group, exclude: Collection[str] | None
    ) -> NoCapableNodesError | UnknownModelError:
        required = request.capabilities_needed
        live = [e for e in g.members if e is not None]
        if not live:
            if request.model and not self.registry.serves_model(request.model):
                return UnknownModelError(request.model, self.registry.models())
            reason = "no node offers every required capability"
            if request.context_tokens:
                reason += f" with a context of {request.context_tokens} tokens"
            return NoCapableNodesError(required, self.registry.offered(), reason=reason)
        excluded: dict[str, str] = {}
        for e in live:
            why = "already tried" if exclude and e.id in exclude else self._excluded(e, self._now)
            excluded[e.id] = why or "excluded"
        return NoCapableNodesError(
            required,
            {e.id: e.caps for e in live},
            reason="every capable node is excluded",
            excluded=excluded,
        )

    # -- inspection ------------------------------------------------------------------------

    def score(self, node_id: str) -> float:
        """The node's current key under the active strategy (``-inf`` when excluded)."""
        return self._key(self.registry.entry(node_id))

    def exclusion(self, node_id: str, now: float) -> str | None:
        """Why ``node_id`` cannot be picked at ``now`` (``None`` if it can)."""
        return self._excluded(self.registry.entry(node_id), now)

    def load(self, node_id: str, now: float | None = None) -> float:
        """The node's load at ``now`` (default: the clock's now) as routing sees it."""
        at = self.clock.monotonic() if now is None else now
        return entry_load(self.registry.entry(node_id), at, self.settings)

    def intelligent_score(self, node_id: str, now: float | None = None) -> float:
        """The post's score for ``node_id`` whatever the active strategy."""
        return intelligent_score(
            self.tracker.performance(node_id), self.load(node_id, now), self.settings
        )

    def load_report(self, node_id: str, now: float | None = None) -> dict[str, Any]:
        """What routing knows of the node's load at ``now``: the load it uses, the last
        reading (its source, age, weight and state: fresh, aging, stale or none) and the
        failed polls since, for snapshots and admin pages."""
        at = self.clock.monotonic() if now is None else now
        e = self.registry.entry(node_id)
        m = e.metrics
        weight = signal_weight(e.reported_at, at, self.settings)
        return {
            "load": entry_load(e, at, self.settings),
            "source": e.source,
            "state": signal_state(weight, e.reported_at is not None),
            "age": None if e.reported_at is None else at - e.reported_at,
            "weight": weight,
            "reported": {
                "cpu": m.cpu,
                "memory": m.memory,
                "queue_depth": m.queue_depth,
                "running": m.running,
            },
            "poll_error": e.poll_error,
            "poll_failures": e.poll_failures,
        }
