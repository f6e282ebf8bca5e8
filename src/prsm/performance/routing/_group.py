"""The balancer's groups: the capable nodes of one request shape and their keys.

Each distinct request shape (model, required capabilities, context size) gets a
:class:`Group`: its capable nodes and one key per node. A node added to the registry is
appended to the groups it belongs to; a removed one leaves a tombstone (key ``-inf``) until
the group is compacted. The argmax strategies read the top of a lazy max-heap (``O(log n)``
per change, no scan); the round-robin ones step the group's cursor (see
:mod:`._balancer`).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection

from ._entry import NodeEntry
from ._registry import GroupKey
from ._scoring import EXCLUDED

_POS_INF = math.inf


class Group:
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


def excluded_keys(g: Group, keys: list[float], exclude: Collection[str]) -> list[float]:
    """``keys`` with the key of each node in ``exclude`` made :data:`EXCLUDED`."""
    return [EXCLUDED if nid in exclude else k for nid, k in zip(g.ids, keys, strict=True)]
