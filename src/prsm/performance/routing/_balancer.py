"""The load balancer: capability filter → exclusion (draining, full, breaker open) → strategy.

Each distinct request shape (model, required capabilities, context size) gets a *group*: its
capable nodes and one key per node (see :mod:`.strategies`), kept up to date incrementally —
a node's key is recomputed (once, before the next pick) only when its load, state, learned
performance or breaker changes, and an excluded node's key is ``-inf``. A pick reads the top
of a lazy max-heap for the argmax strategies (``O(log n)`` per change, no scan) and steps a
cursor for the round-robin ones, so it costs about the same at 10 and 1,000 nodes; no pick
loops over the nodes in Python. Breaker exclusions that end at a known time (OPEN until its reset
timeout) are lifted lazily on the first pick after that time.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Collection

from ..clock import Clock, SystemClock
from ..errors import NoCapableNodesError, UnknownModelError
from ..types import AIRequest
from ._node import NodeSpec, NodeState
from ._registry import GroupKey, NodeEntry, NodeRegistry
from ._settings import BalancerSettings, check_strategy
from ._strategies import ARGMAX_STRATEGIES, Candidate, node_load, strategy_key, wrr_schedule
from ._tracker import PerformanceTracker

_NEG_INF = -math.inf
_POS_INF = math.inf


def entry_load(e: NodeEntry, settings: BalancerSettings) -> float:
    """The post's load of a registered node (its reported metrics and our in-flight)."""
    m = e.metrics
    return node_load(m.cpu, m.memory, m.queue_depth, e.in_flight, e.capacity, settings=settings)


class _Group:
    """The capable nodes of one request shape and their keys.

    For the argmax strategies a lazy max-heap of ``(-key, index, version)`` sits beside the
    keys: a changed key pushes a new entry and bumps the member's version; a pick pops stale
    entries off the top. Ties go to the lowest index, as ``keys.index(max(keys))`` would.
    """

    __slots__ = ("cursor", "heap", "ids", "keys", "members", "schedule", "versions")

    def __init__(self, members: tuple[NodeEntry, ...], keys: list[float], argmax: bool) -> None:
        self.members = members
        self.ids = [m.id for m in members]
        self.keys = keys
        self.cursor = 0
        self.schedule: tuple[int, ...] = ()
        self.versions = [0] * len(members)
        self.heap: list[tuple[float, int, int]] | None = [] if argmax else None
        if argmax:
            self.rebuild()

    def rebuild(self) -> None:
        versions = self.versions
        heap = [(-k, i, versions[i]) for i, k in enumerate(self.keys)]
        heapq.heapify(heap)
        self.heap = heap

    def set_key(self, i: int, k: float) -> None:
        self.keys[i] = k
        heap = self.heap
        if heap is not None:
            v = self.versions[i] + 1
            self.versions[i] = v
            heapq.heappush(heap, (-k, i, v))
            if len(heap) > 2 * len(self.keys) + 16:
                self.rebuild()

    def best(self) -> int:
        """The index of the largest key (-1 if every member is excluded)."""
        heap = self.heap
        assert heap is not None
        versions = self.versions
        while True:
            neg, i, v = heap[0]
            if versions[i] == v:
                return -1 if neg == _POS_INF else i
            heapq.heappop(heap)


class AILoadBalancer:
    """Routes requests to nodes (the source post's ``AILoadBalancer``).

    ``route_request(request)`` returns the chosen :class:`NodeSpec`; ``pick(request, now)``
    is the same without ``await`` for drivers that already hold ``now``. Nodes that lack a
    required capability, are draining, are full (in-flight at capacity) or whose breaker
    refuses calls are never picked; when none is left, :class:`NoCapableNodesError` names the
    required and offered capabilities and why each capable node was excluded.
    """

    def __init__(
        self,
        registry: NodeRegistry | None = None,
        tracker: PerformanceTracker | None = None,
        settings: BalancerSettings | None = None,
        *,
        rng: random.Random | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings or BalancerSettings()
        self.registry = registry if registry is not None else NodeRegistry()
        self.tracker = tracker if tracker is not None else PerformanceTracker(self.settings)
        self.rng = rng or random.Random()
        self.clock = clock or SystemClock()
        self.strategy = self.settings.strategy
        self._groups: dict[GroupKey, _Group] = {}
        self._where: dict[str, list[tuple[_Group, int]]] = {}
        self._blocked: dict[str, float] = {}
        self._unblock_heap: list[tuple[float, str]] = []
        self._next_unblock = math.inf
        self._now = 0.0
        self._dirty: set[str] = set()
        self._keyfn = self._make_keyfn()
        self.registry.add_listener(self._on_registry)
        self.tracker.set_listener(self._refresh)

    # -- configuration ---------------------------------------------------------------------

    def set_strategy(self, strategy: str) -> None:
        """Switch strategy (keys are rebuilt on the next pick)."""
        self.strategy = check_strategy(strategy)
        self._keyfn = self._make_keyfn()
        self._drop_groups()

    def _make_keyfn(self) -> Callable[[NodeEntry], float]:
        s = self.settings
        strategy = self.strategy
        tracker = self.tracker
        cw, mw, qw = s.cpu_weight, s.memory_weight, s.queue_weight
        pw, lw, scale = s.performance_weight, s.load_weight, s.latency_scale

        if strategy == "intelligent":

            def key(e: NodeEntry) -> float:
                m = e.metrics
                q = (m.queue_depth + e.in_flight) / e.capacity
                load = cw * m.cpu + mw * m.memory + qw * (q if q < 1.0 else 1.0)
                st = tracker.stats(e.id)
                perf = st.success_rate * scale / (scale + st.latency)
                return pw * perf + lw * (1.0 - load)

            return key
        if strategy in ("least_loaded", "power_of_two"):

            def key(e: NodeEntry) -> float:
                return 1.0 - entry_load(e, s)

            return key
        if strategy == "latency":
            return lambda e: -tracker.latency(e.id)
        return lambda e: 0.0

    # -- keeping keys current --------------------------------------------------------------

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

    def _key(self, e: NodeEntry) -> float:
        if (
            e.state is NodeState.DRAINING
            or e.in_flight >= e.capacity
            or self._blocked.get(e.id, 0.0) > self._now
        ):
            return _NEG_INF
        return self._keyfn(e)

    def _refresh(self, node_id: str) -> None:
        """Note that ``node_id``'s key must be recomputed before the next pick (several
        changes between two picks — sent, answered, learned — cost one recomputation)."""
        self._dirty.add(node_id)

    def _flush(self) -> None:
        dirty = self._dirty
        while dirty:
            self._recompute(dirty.pop())

    def _recompute(self, node_id: str) -> None:
        places = self._where.get(node_id)
        if not places:
            return
        group0, i0 = places[0]
        k = self._key(group0.members[i0])
        for group, i in places:
            group.set_key(i, k)

    def _on_registry(self, node_id: str, change: str) -> None:
        if change in ("added", "updated", "removed"):
            if change == "removed":
                self._blocked.pop(node_id, None)
                self.tracker.forget(node_id)
            self._drop_groups()
        else:
            self._refresh(node_id)

    def _drop_groups(self) -> None:
        self._groups = {}
        self._where = {}
        self._dirty.clear()

    def set_blocked(self, node_id: str, until: float) -> None:
        """Exclude ``node_id`` until ``until`` (monotonic seconds; ``inf``: until told
        otherwise, ``0``: not excluded). The breakers call this on every state change."""
        if until <= 0.0:
            if self._blocked.pop(node_id, None) is None:
                return
        else:
            if self._blocked.get(node_id) == until:
                return
            self._blocked[node_id] = until
            if until != math.inf:
                heapq.heappush(self._unblock_heap, (until, node_id))
                self._next_unblock = min(self._next_unblock, until)
        self._refresh(node_id)

    def _lift_expired(self, now: float) -> None:
        heap = self._unblock_heap
        self._now = now
        while heap and heap[0][0] <= now:
            until, node_id = heapq.heappop(heap)
            if self._blocked.get(node_id) == until:
                self._dirty.add(node_id)
        self._next_unblock = heap[0][0] if heap else math.inf

    def _group(self, key: GroupKey) -> _Group:
        members = self.registry.candidates(key)
        g = _Group(members, [self._key(e) for e in members], self.strategy in ARGMAX_STRATEGIES)
        if self.strategy == "weighted_round_robin":
            g.schedule = wrr_schedule([e.spec.weight for e in members])
        if len(self._groups) >= self.settings.max_cached_groups:
            self._drop_groups()
        self._groups[key] = g
        for i, e in enumerate(members):
            self._where.setdefault(e.id, []).append((g, i))
        return g

    # -- picking ---------------------------------------------------------------------------

    async def route_request(self, request: AIRequest) -> NodeSpec:
        """The node to send ``request`` to (the source post's call)."""
        return self.pick(request, self.clock.monotonic())

    def pick(
        self, request: AIRequest, now: float, exclude: Collection[str] | None = None
    ) -> NodeSpec:
        """The node ``request`` goes to at time ``now``, never one in ``exclude``."""
        if now >= self._next_unblock:
            self._lift_expired(now)
        else:
            self._now = now
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
        if exclude:
            keys = [_NEG_INF if nid in exclude else k for nid, k in zip(g.ids, keys, strict=True)]
        i = self._choose(g, keys)
        if i < 0:
            raise self._no_capable(request, g, exclude)
        return g.members[i].spec

    def _choose(self, g: _Group, keys: list[float]) -> int:
        strategy = self.strategy
        if strategy in ARGMAX_STRATEGIES:
            if not keys:
                return -1
            if strategy == "latency" and self.rng.random() < self.settings.latency_explore:
                eligible = [i for i, k in enumerate(keys) if k != _NEG_INF]
                return self.rng.choice(eligible) if eligible else -1
            if keys is g.keys:
                return g.best()
            best = max(keys)  # a retry's exclusions: a one-off list
            return -1 if best == _NEG_INF else keys.index(best)
        n = len(keys)
        if strategy == "round_robin":
            start = g.cursor
            for step in range(n):
                i = (start + step) % n
                if keys[i] != _NEG_INF:
                    g.cursor = i + 1
                    return i
            return -1
        if strategy == "weighted_round_robin":
            schedule = g.schedule
            m = len(schedule)
            start = g.cursor
            for step in range(m):
                pos = (start + step) % m
                i = schedule[pos]
                if keys[i] != _NEG_INF:
                    g.cursor = pos + 1
                    return i
            return -1
        # power_of_two: two random eligible members, the less loaded wins.
        if n == 0:
            return -1
        rand = self.rng.randrange
        a = b = -1
        for _ in range(8):
            j = rand(n)
            if keys[j] != _NEG_INF and j != a:
                if a < 0:
                    a = j
                else:
                    b = j
                    break
        if b < 0:
            eligible = [i for i, k in enumerate(keys) if k != _NEG_INF and i != a]
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
        self, request: AIRequest, g: _Group, exclude: Collection[str] | None
    ) -> NoCapableNodesError | UnknownModelError:
        required = request.capabilities_needed
        if not g.members:
            if request.model and not self.registry.serves_model(request.model):
                return UnknownModelError(request.model, self.registry.models())
            reason = "no node offers every required capability"
            if request.context_tokens:
                reason += f" with a context of {request.context_tokens} tokens"
            return NoCapableNodesError(required, self.registry.offered(), reason=reason)
        excluded: dict[str, str] = {}
        for e in g.members:
            why = "already tried" if exclude and e.id in exclude else self._excluded(e, self._now)
            excluded[e.id] = why or "excluded"
        return NoCapableNodesError(
            required,
            {e.id: e.caps for e in g.members},
            reason="every capable node is excluded",
            excluded=excluded,
        )

    # -- inspection ------------------------------------------------------------------------

    def candidates(self, request: AIRequest, now: float) -> list[Candidate]:
        """The strategy's view of ``request``'s capable nodes at ``now`` (for the pure
        :func:`~prsm.performance.routing.choose`, the simulator and admin pages)."""
        key = self.registry.group_key(
            request.model, request.required_capabilities, request.context_tokens
        )
        out = []
        for e in self.registry.candidates(key):
            out.append(
                Candidate(
                    node_id=e.id,
                    load=entry_load(e, self.settings),
                    performance=self.tracker.performance(e.id),
                    latency=self.tracker.latency(e.id),
                    weight=e.spec.weight,
                    eligible=self._excluded(e, now) is None,
                )
            )
        return out

    def score(self, node_id: str) -> float:
        """The node's current key under the active strategy (``-inf`` when excluded)."""
        return self._key(self.registry.entry(node_id))

    def exclusion(self, node_id: str, now: float) -> str | None:
        """Why ``node_id`` cannot be picked at ``now`` (``None`` if it can)."""
        return self._excluded(self.registry.entry(node_id), now)

    def intelligent_score(self, node_id: str) -> float:
        """The post's score for ``node_id`` whatever the active strategy."""
        return strategy_key(
            "intelligent",
            self.tracker.performance(node_id),
            entry_load(self.registry.entry(node_id), self.settings),
            self.tracker.latency(node_id),
            self.settings,
        )
