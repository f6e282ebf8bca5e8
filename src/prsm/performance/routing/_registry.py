"""The node registry: which nodes exist, what they offer, how loaded they are right now.

Nodes are added, updated, drained and removed at run time. The registry keeps a capability
index (capability → node ids) and caches the candidate list per distinct request shape
(model, required capabilities, context size), so finding the capable nodes of a request is a
dictionary lookup. Adding or removing a node edits the cached lists in place (the node is
appended to, or dropped from, the lists it belongs to); only a change of the set of context
sizes or an update of a node's spec drops the cache and bumps :attr:`NodeRegistry.version`.

Two kinds of observers: *listeners* hear of membership, state and reported-load changes
(``listener(node_id, change)``); *load watchers* hear, with nothing else to decide, that a
node's load changed (a reading arrived, or a request was sent or answered) — the balancer is
one, and this is the path every request takes twice, so it is kept to a call.

Readings carry their time: :meth:`NodeRegistry.update_metrics` stamps them with the
registry's clock (the balancer's, when the registry was made without one), and the poller
records failed polls (:meth:`NodeRegistry.poll_failed`), so a stale or failing node shows as
such (:mod:`.scoring` says how age weighs).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator

from ..clock import Clock, SystemClock
from ..errors import ConfigError
from ._entry import NodeEntry
from ._node import NodeMetrics, NodeSpec, NodeState

#: What changed: a node was "added", "updated" (its spec), "removed", or its "state" or
#: reported "metrics" changed.
Listener = Callable[[str, str], None]

#: Told ``node_id`` whenever the node's load changed (a reading, a request sent or answered).
LoadWatcher = Callable[[str], None]

#: Group key: (model, required capabilities, context threshold).
GroupKey = tuple[str, frozenset[str], int]

#: Cached candidate lists kept at most (distinct request shapes); beyond, the cache restarts.
MAX_CACHED_KEYS = 4096


class NodeRegistry:
    """Every node this process may route to."""

    def __init__(self, nodes: Iterable[NodeSpec] = (), *, clock: Clock | None = None) -> None:
        #: every node's entry by its id: read it freely (``node_id in registry.by_id`` is the
        #: hot path's membership test: no ``__contains__`` call), change it only here
        self.by_id: dict[str, NodeEntry] = {}
        self._by_cap: dict[str, set[str]] = {}
        self._context_count: dict[int, int] = {}
        self._contexts: list[int] = []
        self._candidates: dict[GroupKey, tuple[NodeEntry, ...]] = {}
        self._listeners: list[Listener] = []
        self._watchers: list[LoadWatcher] = []
        self._seq = 0
        self._clock = clock
        self.version = 0
        for spec in nodes:
            self.add(spec)

    # -- time ------------------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The clock readings are stamped with (the system clock unless one was given or
        adopted)."""
        if self._clock is None:
            self._clock = SystemClock()
        return self._clock

    def adopt_clock(self, clock: Clock) -> None:
        """Use ``clock`` unless the registry was made with one (the balancer calls this, so
        readings and ages use the same clock)."""
        if self._clock is None:
            self._clock = clock

    # -- observers -------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(node_id, change)`` after every membership, state or reading
        change."""
        self._listeners.append(listener)

    def watch_load(self, watcher: LoadWatcher) -> None:
        """Call ``watcher(node_id)`` after every change of a node's load (readings and
        in-flight requests)."""
        self._watchers.append(watcher)

    def _notify(self, node_id: str, change: str) -> None:
        for listener in self._listeners:
            listener(node_id, change)

    # -- membership ------------------------------------------------------------------------

    def add(self, spec: NodeSpec) -> None:
        """Register a new node (its id must be new)."""
        if not isinstance(spec, NodeSpec):
            raise TypeError(f"spec: expected a NodeSpec, got {type(spec).__name__}")
        if spec.id in self.by_id:
            raise ConfigError(f"node[{spec.id}]", "a node with this id is already registered")
        entry = NodeEntry(spec, self._seq)
        self._seq += 1
        self.by_id[spec.id] = entry
        self._index(entry)
        if self._count_context(spec.max_context, +1):
            self._reset()
        else:
            for key, members in self._candidates.items():
                if self.matches(key, entry):
                    self._candidates[key] = (*members, entry)
        self._notify(spec.id, "added")

    def update(self, spec: NodeSpec) -> None:
        """Replace a registered node's spec (same id); its state, readings and in-flight
        stay."""
        entry = self.entry(spec.id)
        self._unindex(entry)
        self._count_context(entry.spec.max_context, -1)
        entry.set_spec(spec)
        self._index(entry)
        self._count_context(spec.max_context, +1)
        self._reset()
        self._notify(spec.id, "updated")

    def upsert(self, spec: NodeSpec) -> None:
        """Add the node, or update it if its id is registered."""
        if spec.id in self.by_id:
            self.update(spec)
        else:
            self.add(spec)

    def remove(self, node_id: str) -> NodeSpec:
        """Unregister a node at once (requests it holds finish; nothing new is sent)."""
        entry = self.entry(node_id)
        del self.by_id[node_id]
        self._unindex(entry)
        if self._count_context(entry.spec.max_context, -1):
            self._reset()
        else:
            for key, members in self._candidates.items():
                if entry in members:
                    self._candidates[key] = tuple(m for m in members if m is not entry)
        self._notify(node_id, "removed")
        return entry.spec

    def drain(self, node_id: str) -> None:
        """Send no new requests to the node; what it holds finishes."""
        self._set_state(node_id, NodeState.DRAINING)

    def activate(self, node_id: str) -> None:
        """Undo :meth:`drain`."""
        self._set_state(node_id, NodeState.ACTIVE)

    def _set_state(self, node_id: str, state: NodeState) -> None:
        entry = self.entry(node_id)
        if entry.state is not state:
            entry.state = state
            self._notify(node_id, "state")

    def _index(self, entry: NodeEntry) -> None:
        for cap in entry.caps:
            self._by_cap.setdefault(cap, set()).add(entry.id)

    def _unindex(self, entry: NodeEntry) -> None:
        for cap in entry.caps:
            ids = self._by_cap.get(cap)
            if ids is not None:
                ids.discard(entry.id)
                if not ids:
                    del self._by_cap[cap]

    def _count_context(self, ctx: int, delta: int) -> bool:
        """Count one more (or less) node with context ``ctx``; True when the set of
        limited context sizes changed (the group keys change with it)."""
        if not ctx:
            return False
        n = self._context_count.get(ctx, 0) + delta
        if n > 0:
            self._context_count[ctx] = n
            if n > 1 or delta < 0:
                return False
            bisect.insort(self._contexts, ctx)
            return True
        self._context_count.pop(ctx, None)
        self._contexts.remove(ctx)
        return True

    def _reset(self) -> None:
        self._candidates = {}
        self.version += 1

    # -- live readings ---------------------------------------------------------------------

    def update_metrics(
        self,
        node_id: str,
        metrics: NodeMetrics,
        *,
        source: str = "reported",
        now: float | None = None,
    ) -> None:
        """Store the node's latest reading (cpu, memory, queue depth, running), taken at
        ``now`` (default: the registry's clock) from ``source``; its ``in_flight`` field is
        ignored (this registry counts in-flight requests itself). A good reading clears the
        node's poll failures."""
        if not isinstance(metrics, NodeMetrics):
            raise TypeError(f"metrics: expected NodeMetrics, got {type(metrics).__name__}")
        entry = self.entry(node_id)
        entry.metrics = metrics
        entry.reported_at = self.clock.monotonic() if now is None else now
        entry.source = source
        entry.poll_error = None
        entry.poll_failures = 0
        for watcher in self._watchers:
            watcher(node_id)
        self._notify(node_id, "metrics")

    def poll_failed(self, node_id: str, error: str, now: float) -> None:
        """Record that reading the node's load failed at ``now`` (its last good reading, if
        any, keeps ageing)."""
        entry = self.by_id.get(node_id)
        if entry is not None:
            entry.poll_error = error
            entry.poll_failures += 1
            entry.polled_at = now

    def acquire(self, node_id: str) -> None:
        """Count one more request sent to the node."""
        entry = self.by_id.get(node_id)
        if entry is not None:
            entry.in_flight += 1
            for watcher in self._watchers:
                watcher(node_id)

    def release(self, node_id: str) -> None:
        """Count one request the node finished (a removed node is ignored)."""
        entry = self.by_id.get(node_id)
        if entry is not None and entry.in_flight > 0:
            entry.in_flight -= 1
            for watcher in self._watchers:
                watcher(node_id)

    # -- queries ---------------------------------------------------------------------------

    def entry(self, node_id: str) -> NodeEntry:
        """The registry's entry for ``node_id`` (``KeyError`` naming the known ids if none)."""
        try:
            return self.by_id[node_id]
        except KeyError:
            known = ", ".join(sorted(self.by_id)[:20]) or "none"
            raise KeyError(f"unknown node {node_id!r}; registered: {known}") from None

    def get(self, node_id: str) -> NodeSpec:
        """The spec of ``node_id``."""
        return self.entry(node_id).spec

    def state(self, node_id: str) -> NodeState:
        return self.entry(node_id).state

    def metrics(self, node_id: str) -> NodeMetrics:
        """The node's last reported metrics with the in-flight count kept here."""
        return self.entry(node_id).live_metrics()

    def nodes(self) -> list[NodeSpec]:
        """Every registered node's spec, in registration order."""
        return [e.spec for e in self.by_id.values()]

    def entries(self) -> list[NodeEntry]:
        return list(self.by_id.values())

    def __len__(self) -> int:
        return len(self.by_id)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.by_id

    def __iter__(self) -> Iterator[NodeSpec]:
        return iter(self.nodes())

    def models(self) -> list[str]:
        """Every model some registered node serves, sorted."""
        return sorted({m for e in self.by_id.values() for m in e.spec.models})

    def serves_model(self, model: str) -> bool:
        return f"model:{model}" in self._by_cap

    def offered(self) -> dict[str, frozenset[str]]:
        """Each node's capabilities (``model:<name>`` included), for error messages."""
        return {e.id: e.caps for e in self.by_id.values()}

    def context_threshold(self, context_tokens: int) -> int:
        """The smallest registered ``max_context`` that fits ``context_tokens`` (0 for no
        need, -1 when only unlimited nodes fit): requests with equal thresholds share the
        same candidates."""
        if context_tokens <= 0:
            return 0
        i = bisect.bisect_left(self._contexts, context_tokens)
        return self._contexts[i] if i < len(self._contexts) else -1

    def group_key(self, model: str, required: frozenset[str], context_tokens: int) -> GroupKey:
        return (model, required, self.context_threshold(context_tokens))

    @staticmethod
    def matches(key: GroupKey, entry: NodeEntry) -> bool:
        """Whether ``entry`` offers everything ``key`` asks."""
        model, required, threshold = key
        if model and f"model:{model}" not in entry.caps:
            return False
        if not required <= entry.caps:
            return False
        ctx = entry.spec.max_context
        return not (threshold and ctx and (threshold == -1 or ctx < threshold))

    def candidates(self, key: GroupKey) -> tuple[NodeEntry, ...]:
        """The nodes that offer everything ``key`` asks (any state, any load), in
        registration order; cached, and kept current as nodes come and go."""
        found = self._candidates.get(key)
        if found is None:
            found = self._compute_candidates(key)
            if len(self._candidates) >= MAX_CACHED_KEYS:
                self._candidates = {}
            self._candidates[key] = found
        return found

    def _compute_candidates(self, key: GroupKey) -> tuple[NodeEntry, ...]:
        model, required, _ = key
        needed = set(required)
        if model:
            needed.add(f"model:{model}")
        ids: set[str] | None = None
        for cap in sorted(needed, key=lambda c: len(self._by_cap.get(c, ()))):
            have = self._by_cap.get(cap)
            if not have:
                return ()
            ids = set(have) if ids is None else ids & have
            if not ids:
                return ()
        return tuple(
            e for e in self.by_id.values() if (ids is None or e.id in ids) and self.matches(key, e)
        )
