"""The load balancer's state and the upkeep of its groups' keys.

:class:`BalancerKeys` (the base of :class:`~._balancer.AILoadBalancer`) holds the registry,
tracker, breaker exclusions, probes and the cached :class:`~._group.Group` of each request
shape, and keeps every group's keys current incrementally: a node's key is recomputed (once,
before the next pick) only when its load, state, learned performance or breaker changes, or
when the weight of its reported load steps down with age (a timer), and an excluded node's
key is ``-inf``. Breaker exclusions that end at a known time (OPEN until its reset timeout)
are lifted lazily on the first pick after that time. Picking is :mod:`._balancer`'s.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random

from ..clock import Clock, SystemClock
from ._entry import NodeEntry
from ._group import Group
from ._node import NodeState
from ._registry import GroupKey, NodeRegistry
from ._scoring import (
    ARGMAX_STRATEGIES,
    EXCLUDED,
    make_key,
    signal_next_change,
    wrr_schedule,
)
from ._settings import BalancerSettings
from ._tracker import PerformanceTracker

_DRAINING = NodeState.DRAINING
_LOAD_STRATEGIES = frozenset({"intelligent", "least_loaded", "power_of_two"})

#: The key of a node whose breaker is due a probe: it is picked before any other by the next
#: unary request, so the probe is sent as soon as the open interval ends, whatever the node's
#: learned score (a node scored low by its failures would otherwise never be picked, and its
#: breaker never closed).
PROBE = math.inf


class BalancerKeys:
    """The balancer's state and its groups' keys, kept current (see the module's text);
    :class:`~._balancer.AILoadBalancer` adds picking and inspection."""

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
        self._groups: dict[GroupKey, Group] = {}
        self._where: dict[str, list[tuple[Group, int]]] = {}
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

    def _set_keyfn(self) -> None:
        self._keyfn = make_key(self.strategy, self.settings, self.tracker)
        self._uses_load = self.strategy in _LOAD_STRATEGIES

    # -- keeping keys current --------------------------------------------------------------

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

    def _drop_group(self, g: Group) -> None:
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

    def _group(self, key: GroupKey) -> Group:
        members = list(self.registry.candidates(key))
        g = Group(key, members, [self._key(e) for e in members], self.strategy in ARGMAX_STRATEGIES)
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
