"""The node registry: which nodes exist, what they offer, how loaded they are right now.

Nodes are added, updated, drained and removed at run time. The registry keeps a capability
index (capability → node ids) and caches the candidate list per distinct request shape
(model, required capabilities, context size), so finding the capable nodes of a request is a
dictionary lookup; the cache is dropped whenever a node is added, removed or changes its
capabilities. Listeners (the balancer) hear of every change.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from ..errors import ConfigError
from ._node import NodeMetrics, NodeSpec, NodeState

#: What changed: a node was "added", "updated" (its spec), "removed", or its "state",
#: "metrics" or "in_flight" changed.
Listener = Callable[[str, str], None]

#: Group key: (model, required capabilities, context threshold).
GroupKey = tuple[str, frozenset[str], int]


class NodeEntry:
    """One registered node: its spec, admin state, reported metrics and in-flight count."""

    __slots__ = ("capacity", "caps", "id", "in_flight", "metrics", "spec", "state")

    def __init__(self, spec: NodeSpec) -> None:
        self.id = spec.id
        self.spec = spec
        self.caps = spec.all_capabilities
        self.capacity = spec.capacity
        self.state = NodeState.ACTIVE
        self.metrics = NodeMetrics()
        self.in_flight = 0

    @property
    def full(self) -> bool:
        """True when it holds as many requests as it can run and queue."""
        return self.in_flight >= self.capacity

    def live_metrics(self) -> NodeMetrics:
        """Its reported metrics with this process's in-flight count."""
        return replace(self.metrics, in_flight=self.in_flight)


class NodeRegistry:
    """Every node this process may route to."""

    def __init__(self, nodes: Iterable[NodeSpec] = ()) -> None:
        self._entries: dict[str, NodeEntry] = {}
        self._by_cap: dict[str, set[str]] = {}
        self._contexts: list[int] = []
        self._candidates: dict[GroupKey, tuple[NodeEntry, ...]] = {}
        self._listeners: list[Listener] = []
        self.version = 0
        for spec in nodes:
            self.add(spec)

    # -- listeners -------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(node_id, change)`` after every change."""
        self._listeners.append(listener)

    def _notify(self, node_id: str, change: str) -> None:
        for listener in self._listeners:
            listener(node_id, change)

    # -- membership ------------------------------------------------------------------------

    def add(self, spec: NodeSpec) -> None:
        """Register a new node (its id must be new)."""
        if not isinstance(spec, NodeSpec):
            raise TypeError(f"spec: expected a NodeSpec, got {type(spec).__name__}")
        if spec.id in self._entries:
            raise ConfigError(f"node[{spec.id}]", "a node with this id is already registered")
        self._entries[spec.id] = NodeEntry(spec)
        self._reindex()
        self._notify(spec.id, "added")

    def update(self, spec: NodeSpec) -> None:
        """Replace a registered node's spec (same id); its state, metrics and in-flight stay."""
        entry = self.entry(spec.id)
        entry.spec = spec
        entry.caps = spec.all_capabilities
        entry.capacity = spec.capacity
        self._reindex()
        self._notify(spec.id, "updated")

    def upsert(self, spec: NodeSpec) -> None:
        """Add the node, or update it if its id is registered."""
        if spec.id in self._entries:
            self.update(spec)
        else:
            self.add(spec)

    def remove(self, node_id: str) -> NodeSpec:
        """Unregister a node at once (requests it holds finish; nothing new is sent)."""
        entry = self.entry(node_id)
        del self._entries[node_id]
        self._reindex()
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

    def _reindex(self) -> None:
        by_cap: dict[str, set[str]] = {}
        for entry in self._entries.values():
            for cap in entry.caps:
                by_cap.setdefault(cap, set()).add(entry.id)
        self._by_cap = by_cap
        self._contexts = sorted({e.spec.max_context for e in self._entries.values()} - {0})
        self._candidates = {}
        self.version += 1

    # -- live readings ---------------------------------------------------------------------

    def update_metrics(self, node_id: str, metrics: NodeMetrics) -> None:
        """Store the node's latest reported cpu, memory and queue depth (its ``in_flight``
        field is ignored: this registry counts in-flight requests itself)."""
        if not isinstance(metrics, NodeMetrics):
            raise TypeError(f"metrics: expected NodeMetrics, got {type(metrics).__name__}")
        self.entry(node_id).metrics = metrics
        self._notify(node_id, "metrics")

    def acquire(self, node_id: str) -> None:
        """Count one more request sent to the node."""
        entry = self._entries.get(node_id)
        if entry is not None:
            entry.in_flight += 1
            self._notify(node_id, "in_flight")

    def release(self, node_id: str) -> None:
        """Count one request the node finished (a removed node is ignored)."""
        entry = self._entries.get(node_id)
        if entry is not None and entry.in_flight > 0:
            entry.in_flight -= 1
            self._notify(node_id, "in_flight")

    # -- queries ---------------------------------------------------------------------------

    def entry(self, node_id: str) -> NodeEntry:
        """The registry's entry for ``node_id`` (``KeyError`` naming the known ids if none)."""
        try:
            return self._entries[node_id]
        except KeyError:
            known = ", ".join(sorted(self._entries)[:20]) or "none"
            raise KeyError(f"unknown node {node_id!r}; registered: {known}") from None

    def get(self, node_id: str) -> NodeSpec:
        """The spec of ``node_id``."""
        return self.entry(node_id).spec

    def state(self, node_id: str) -> NodeState:
        return self.entry(node_id).state

    def metrics(self, node_id: str) -> NodeMetrics:
        """The node's reported metrics with the in-flight count kept here."""
        return self.entry(node_id).live_metrics()

    def nodes(self) -> list[NodeSpec]:
        """Every registered node's spec, in registration order."""
        return [e.spec for e in self._entries.values()]

    def entries(self) -> list[NodeEntry]:
        return list(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._entries

    def __iter__(self) -> Iterator[NodeSpec]:
        return iter(self.nodes())

    def models(self) -> list[str]:
        """Every model some registered node serves, sorted."""
        return sorted({m for e in self._entries.values() for m in e.spec.models})

    def serves_model(self, model: str) -> bool:
        return f"model:{model}" in self._by_cap

    def offered(self) -> dict[str, frozenset[str]]:
        """Each node's capabilities (``model:<name>`` included), for error messages."""
        return {e.id: e.caps for e in self._entries.values()}

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

    def candidates(self, key: GroupKey) -> tuple[NodeEntry, ...]:
        """The nodes that offer everything ``key`` asks (any state, any load), in
        registration order; cached until membership or capabilities change."""
        found = self._candidates.get(key)
        if found is None:
            found = self._compute_candidates(key)
            self._candidates[key] = found
        return found

    def _compute_candidates(self, key: GroupKey) -> tuple[NodeEntry, ...]:
        model, required, threshold = key
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
        out = []
        for entry in self._entries.values():
            if ids is not None and entry.id not in ids:
                continue
            ctx = entry.spec.max_context
            if threshold and ctx and (threshold == -1 or ctx < threshold):
                continue
            out.append(entry)
        return tuple(out)
