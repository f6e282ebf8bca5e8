"""The load balancer: capability filter → exclusion (draining, full, breaker open) → strategy.

This is the one implementation of every routing strategy (their math is in :mod:`.scoring`;
the tests check it against a brute-force reference that lives with them).

Each distinct request shape (model, required capabilities, context size) gets a *group*: its
capable nodes and one key per node, kept up to date incrementally — a node's key is
recomputed (once, before the next pick) only when its load, state, learned performance or
breaker changes, or when the weight of its reported load steps down with age (a timer), and
an excluded node's key is ``-inf``. A node added to the registry is appended to the groups it
belongs to; a removed one leaves a tombstone (key ``-inf``) until the group is compacted. A
pick reads the top of a lazy max-heap for the argmax strategies (``O(log n)`` per change, no
scan) and steps a cursor for the round-robin ones, so it costs about the same at 10 and 1,000
nodes; no pick loops over the nodes in Python. Breaker exclusions that end at a known time
(OPEN until its reset timeout) are lifted lazily on the first pick after that time.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections.abc import Collection
from typing import Any

from ..clock import Clock, SystemClock
from ..errors import NoCapableNodesError, UnknownModelError
from ..types import AIRequest
from ._node import NodeSpec, NodeState
from ._registry import GroupKey, NodeEntry, NodeRegistry
from ._scoring import (
    ARGMAX_STRATEGIES,
    EXCLUDED,
    entry_load,
    intelligent_score,
    make_key,
    signal_next_change,
    signal_state,
    signal_weight,
    wrr_schedule,
)
from ._settings import BalancerSettings, check_strategy
from ._tracker import PerformanceTracker

_POS_INF = math.inf
_DRAINING = NodeState.DRAINING
_LOAD_STRATEGIES = frozenset({"intelligent", "least_loaded", "power_of_two"})


class _Group:
    """The capable nodes of one request shape and their keys.

    ``members`` keeps registration order; a removed member becomes ``None`` (a tombstone with
    key ``-inf``) so indices stay stable. For the argmax strategies a lazy max-heap of
    ``(-key, index, version)`` sits beside the keys: a changed key pushes a new entry and
    bumps the member's version; a pick pops stale entries off the top. Ties go to the lowest
    index, as ``keys.index(max(keys))`` would.
    """

    __slots__ = ("cursor", "dead", "heap", "ids", "key", "keys", "members", "schedule", "versions")

    def __init__(
        self, key: GroupKey, members: list[NodeEntry], keys: list[float], argmax: bool
    ) -> None:
        self.key = key
        self.members: list[NodeEntry | None] = list(members)
        self.ids: list[str | None] = [m.id for m in members]
        self.keys = keys
        self.cursor = 0
        self.dead = 0
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
            if heap and heap[0][1] == i:  # the top's own key changed (a pick's node): replace
                heapq.heapreplace(heap, (-k, i, v))
                return
            heapq.heappush(heap, (-k, i, v))
            if len(heap) > 2 * len(self.keys) + 16:
                self.rebuild()

    def append(self, entry: NodeEntry, k: float) -> int:
        i = len(self.members)
        self.members.append(entry)
        self.ids.append(entry.id)
        self.keys.append(k)
        self.versions.append(0)
        if self.heap is not None:
            heapq.heappush(self.heap, (-k, i, 0))
        return i

    def kill(self, i: int) -> None:
        self.members[i] = None
        self.ids[i] = None
        self.dead += 1
        self.set_key(i, EXCLUDED)

    def best(self) -> int:
        """The index of the largest key (-1 if every member is excluded)."""
        heap = self.heap
        assert heap is not None
        versions = self.versions
        while heap:
            neg, i, v = heap[0]
            if versions[i] == v:
                return -1 if neg == _POS_INF else i
            heapq.heappop(heap)
        return -1


def _excluded(g: _Group, keys: list[float], exclude: Collection[str]) -> list[float]:
    """``keys`` with the key of each node in ``exclude`` made :data:`EXCLUDED`."""
    return [EXCLUDED if nid in exclude else k for nid, k in zip(g.ids, keys, strict=True)]


#: The key of a node whose breaker is due a probe: it is picked before any other by the next
#: unary request, so the probe is sent as soon as the open interval ends, whatever the node's
#: learned score (a node scored low by its failures would otherwise never be picked, and its
#: breaker never closed).
PROBE = math.inf


class AILoadBalancer:
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
        self.registry.adopt_clock(self.clock)
        self.strategy = self.settings.strategy
        self._groups: dict[GroupKey, _Group] = {}
        self._where: dict[str, list[tuple[_Group, int]]] = {}
        self._version = self.registry.version
        self._blocked: dict[str, float] = {}
        self._probe: dict[str, None] = {}  # breaker open then due a probe: picked first
        #: seconds after a node's last outcome at which a node that has failed (learned
        #: success rate below 1) is due a probe, as if its breaker had opened (None: never)
        self.probe_after: float | None = None
        #: the same after a failed probe (None: ``probe_after``): a node that stays down is
        #: probed at this cadence, so one that comes back is found by the next probe
        self.reprobe_after: float | None = None
        self._reprobe: dict[str, None] = {}  # nodes whose last probe failed
        self._probe_timer: dict[str, float] = {}  # node → when it is due a probe
        self._probing: dict[str, None] = {}  # nodes picked as a probe, outcome not known
        self._signal_at: dict[str, float] = {}  # node → its reading's next weight change
        self._timed: dict[str, float] = {}  # node → the reading whose next change is timed
        self._timers: list[tuple[float, str]] = []
        self._next_timer = math.inf
        self._now = 0.0
        self._dirty: dict[str, None] = {}
        self._rr_last: dict[GroupKey, int] = {}  # round robin: the last pick's registration no.
        self._set_keyfn()
        self.registry.add_listener(self._on_registry)
        self.registry.watch_load(self._refresh)
        self.tracker.set_listener(self._refresh)

    # -- configuration ---------------------------------------------------------------------

    def set_strategy(self, strategy: str) -> None:
        """Switch strategy (keys are rebuilt on the next pick)."""
        self.strategy = check_strategy(strategy)
        self._set_keyfn()
        self._drop_groups()
        self._rr_last.clear()

    def _set_keyfn(self) -> None:
        self._keyfn = make_key(self.strategy, self.settings, self.tracker)
        self._uses_load = self.strategy in _LOAD_STRATEGIES

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
        now = self._now
        if (
            e.state is _DRAINING
            or e.in_flight >= e.capacity
            or (self._blocked and self._blocked.get(e.id, 0.0) > now)
        ):
            return EXCLUDED
        if self._probe and e.id in self._probe:
            return PROBE
        if self.probe_after is not None:
            learned = self.tracker.stats(e.id)
            if learned.success_rate < 1.0 and learned.last_seen is not None:
                after = self.probe_after
                if self._reprobe and e.id in self._reprobe and self.reprobe_after is not None:
                    after = self.reprobe_after
                due = learned.last_seen + after
                if now >= due:
                    return PROBE
                if self._probe_timer.get(e.id) != due:
                    self._probe_timer[e.id] = due
                    self._wake(due, e.id)
        reported_at = e.reported_at
        if reported_at is not None and self._uses_load and self._timed.get(e.id) != reported_at:
            self._timed[e.id] = reported_at  # this reading's next step is (or will be) timed
            at = signal_next_change(reported_at, now, self.settings)
            if at != math.inf:
                self._signal_at[e.id] = at
                self._wake(at, e.id)
        return self._keyfn(e, now)

    def _refresh(self, node_id: str) -> None:
        """Note that ``node_id``'s key must be recomputed before the next pick (several
        changes between two picks — sent, answered, learned — cost one recomputation)."""
        self._dirty[node_id] = None

    def _flush(self) -> None:
        dirty = self._dirty
        for node_id in dirty:
            self._recompute(node_id)
        dirty.clear()  # a dict, not a set: set.pop() crawls a table that once held many

    def _recompute(self, node_id: str) -> None:
        places = self._where.get(node_id)
        if not places:
            return
        group, i = places[0]
        k = self._key(group.members[i])  # type: ignore[arg-type]  # never a tombstone here
        if len(places) == 1:
            group.set_key(i, k)
            return
        for group, i in places:
            group.set_key(i, k)

    def _on_registry(self, node_id: str, change: str) -> None:
        if change == "state":
            self._refresh(node_id)
            return
        if change == "metrics":
            return  # the load watcher saw it
        if change == "removed":
            self._blocked.pop(node_id, None)
            self._probe.pop(node_id, None)
            self._probe_timer.pop(node_id, None)
            self._probing.pop(node_id, None)
            self._reprobe.pop(node_id, None)
            self._signal_at.pop(node_id, None)
            self._timed.pop(node_id, None)
            self._dirty.pop(node_id, None)
            self.tracker.forget(node_id)
        if change == "updated" or self.registry.version != self._version:
            self._drop_groups()
        elif change == "added":
            self._add_member(self.registry.entry(node_id))
        elif change == "removed":
            self._remove_member(node_id)

    def _add_member(self, entry: NodeEntry) -> None:
        for key, g in list(self._groups.items()):
            if not NodeRegistry.matches(key, entry):
                continue
            if self.strategy == "weighted_round_robin":  # a new schedule
                self._drop_group(g)
                continue
            i = g.append(entry, self._key(entry))
            self._where.setdefault(entry.id, []).append((g, i))

    def _remove_member(self, node_id: str) -> None:
        for g, i in self._where.pop(node_id, ()):
            wrr = self.strategy == "weighted_round_robin"
            if wrr or g.dead + 1 > len(g.members) // 2 + 8:
                self._drop_group(g)  # a new schedule, or compaction of the tombstones
            else:
                g.kill(i)

    def _drop_group(self, g: _Group) -> None:
        if self._groups.get(g.key) is not g:
            return
        del self._groups[g.key]
        for node_id in g.ids:
            if node_id is None:
                continue
            places = self._where.get(node_id)
            if places is not None:
                kept = [p for p in places if p[0] is not g]
                if kept:
                    self._where[node_id] = kept
                else:
                    del self._where[node_id]

    def _drop_groups(self) -> None:
        self._groups = {}
        self._where = {}
        self._dirty.clear()
        self._version = self.registry.version

    def set_blocked(self, node_id: str, until: float) -> None:
        """Exclude ``node_id`` until ``until`` (monotonic seconds; ``inf``: until told
        otherwise, ``0``: not excluded). The breakers call this on every state change. A node
        once excluded is picked first (key :data:`PROBE`) when its exclusion ends, until it is
        excluded again or told ``0`` (its breaker closed): that pick is the breaker's probe."""
        if until <= 0.0:
            self._probe.pop(node_id, None)
            if self._blocked.pop(node_id, None) is None:
                return
        else:
            self._probe[node_id] = None
            if self._blocked.get(node_id) == until:
                return
            self._blocked[node_id] = until
            if until != math.inf:
                self._wake(until, node_id)
        self._refresh(node_id)

    def _wake(self, at: float, node_id: str) -> None:
        heapq.heappush(self._timers, (at, node_id))
        self._next_timer = min(self._next_timer, at)

    def _fire_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            at, node_id = heapq.heappop(timers)
            if self._signal_at.get(node_id) == at:
                del self._signal_at[node_id]
                self._timed.pop(node_id, None)  # the recomputation times the next step
                self._dirty[node_id] = None
            elif self._blocked.get(node_id) == at:
                self._dirty[node_id] = None
            elif self._probe_timer.get(node_id) == at:
                del self._probe_timer[node_id]
                self._dirty[node_id] = None
        self._next_timer = timers[0][0] if timers else math.inf

    def _group(self, key: GroupKey) -> _Group:
        members = list(self.registry.candidates(key))
        g = _Group(
            key, members, [self._key(e) for e in members], self.strategy in ARGMAX_STRATEGIES
        )
        if self.strategy == "weighted_round_robin":
            g.schedule = wrr_schedule([e.spec.weight for e in members])
        last = self._rr_last.get(key)
        if last is not None:  # a rebuilt group's rotation goes on after the last node picked
            g.cursor = bisect.bisect_right([e.seq for e in members], last)
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
            keys = _excluded(g, keys, exclude)
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

    def _unprobed(self, g: _Group, keys: list[float], now: float) -> list[float]:
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

    def _choose(self, g: _Group, keys: list[float]) -> int:
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
        self, request: AIRequest, g: _Group, exclude: Collection[str] | None
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
