"""Batched histogram observations: the request path appends, a read (or the cap) adds them up.

Recording a value into a plain histogram one at a time costs a ``bisect`` and two adds in
Python, about 0.2 µs each here, and a gateway request records a dozen. Instead, every
histogram child of one registry shares a :class:`Batch`: an observation is two floats
appended to one flat list (the child's slot and the value), and :meth:`Batch.flush` adds
the whole list to the children's bucket counts and sums with numpy (one ``searchsorted`` and
two ``bincount`` for all families together).

When it flushes: before any read of a child's ``counts``, ``sum`` or ``count`` (they are
properties that flush first, so no reader, present or future, sees a value that a recorded
observation has not reached), and when the list holds ``cap`` observations (bounded memory;
the recorder checks once per request). A flush runs under a lock and takes the observations
it adds out of the list with single list operations, so observations appended meanwhile
(from any thread) wait for the next one; nothing is counted twice or lost.

Slots: each child gets one when created, and a run of buckets in one flat array of all the
slots' buckets. A removed child (a node that left) is flushed and its slot freed for a new
child with the same bounds (so the slots and buckets in use stay bounded under churn); the
old child then records into slot 0, which is dropped, as an observation on a removed child
always was (no reader could see it).
"""

from __future__ import annotations

import logging
import struct
import threading
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Observations a batch holds before it adds them up on its own (about 300 gateway requests).
DEFAULT_CAP = 4096

#: The slot whose observations are dropped (removed children record into it).
DROPPED = 0.0


class Batch:
    """Observations waiting to be added to their histograms (see the module docstring).

    ``rows`` is the flat list ``[slot, value, slot, value, …]`` that recording appends to
    (``rows += (child.slot, value)``); ``limit`` its length at which a recorder flushes
    (``2 * cap``).
    """

    __slots__ = ("_arrays", "_base", "_bucket", "_free", "_group", "_groups", "_lock",
                 "_names", "_owner", "_targets", "cap", "limit", "rows")  # fmt: skip

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        if cap < 1:
            raise ValueError(f"cap must be >= 1 observation, got {cap!r}")
        self.cap = cap
        self.limit = 2 * cap
        self.rows: list[float] = []
        self._lock = threading.Lock()
        # per slot: the child (None: free or dropped), its name, its group, its first bucket
        self._targets: list[Any] = []
        self._names: list[str] = []
        self._group: list[int] = []
        self._base: list[int] = []
        # per bucket of the flat array: its slot and its index in that slot's counts
        self._owner: list[int] = []
        self._bucket: list[int] = []
        self._groups: dict[tuple[float, ...], int] = {}  # each distinct tuple of bounds
        self._free: dict[int, list[int]] = {}  # freed slots, by group
        self._arrays: _Arrays | None = None  # rebuilt when the slots change
        self._slot(None, (), "dropped")  # slot 0

    def add(self, child: Any, name: str = "") -> float:
        """A slot for ``child`` (a histogram with ``bounds``, ``_counts`` and ``_sum``;
        ``name`` says which in a log)."""
        with self._lock:
            return float(self._slot(child, child.bounds, name))

    def _slot(self, child: Any, bounds: tuple[float, ...], name: str) -> int:
        g = self._groups.get(bounds)
        if g is None:
            g = self._groups[bounds] = len(self._groups)
        free = self._free.get(g)
        if free:  # a removed child's slot, and its buckets
            slot = free.pop()
            self._targets[slot] = child
            self._names[slot] = name
            return slot
        slot = len(self._targets)
        self._targets.append(child)
        self._names.append(name)
        self._group.append(g)
        self._base.append(len(self._owner))
        self._owner.extend([slot] * (len(bounds) + 1))
        self._bucket.extend(range(len(bounds) + 1))
        self._arrays = None
        return slot

    def release(self, child: Any) -> None:
        """``child`` was removed: add up what it has pending, then free its slot."""
        with self._lock:
            slot = int(child.slot)
            child.slot = DROPPED
            self._flush()
            if slot and self._targets[slot] is child:
                self._targets[slot] = None
                self._free.setdefault(self._group[slot], []).append(slot)

    def __len__(self) -> int:
        """Observations pending."""
        return len(self.rows) // 2

    def flush(self) -> None:
        """Add every pending observation to its child's bucket counts and sum."""
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        rows = self.rows
        n = len(rows)
        if not n:
            return
        pending = rows[:n]  # one list operation each (atomic): appends after n stay
        del rows[:n]
        arrays = self._arrays
        if arrays is None:
            arrays = self._arrays = _Arrays(self._groups, self._group, self._base)
        try:  # struct packs a list of floats four times faster than np.array converts it
            packed = np.frombuffer(struct.pack(f"{n}d", *pending), dtype=np.float64)
        except struct.error:
            packed = self._numbers(pending)
        counts, sums = arrays.add_up(packed)
        targets, owner, bucket = self._targets, self._owner, self._bucket
        hit = np.flatnonzero(counts)
        for at, count in zip(hit.tolist(), counts[hit].tolist(), strict=True):
            child = targets[owner[at]]
            if child is not None:
                child._counts[bucket[at]] += count
        added = np.flatnonzero(sums)
        for slot, total in zip(added.tolist(), sums[added].tolist(), strict=True):
            child = targets[slot]
            if child is not None:
                child._sum += total

    def _numbers(self, pending: list[Any]) -> np.ndarray[Any, Any]:
        """``pending`` less the observations whose value is not a number, each logged."""
        kept: list[float] = []
        one = struct.Struct("d")
        for slot, value in zip(pending[0::2], pending[1::2], strict=True):
            try:
                kept += (slot, one.unpack(one.pack(value))[0])
            except struct.error:
                log.error("histogram %s observed %r, not a number: dropped",
                          self._names[int(slot)], value)  # fmt: skip
        return np.array(kept, dtype=np.float64)


class _Arrays:
    """The slots as numpy arrays, for adding a batch up.

    ``bounds`` is every bound of every group, sorted; one ``searchsorted`` in it gives each
    value ``r``, the number of bounds (of all groups) below it. A slot's own bucket is then the
    number of its group's bounds among those ``r``: ``bisect_left(bounds, v)``, the bucket a
    one-at-a-time ``observe`` chooses (``le``: value <= bound). ``below[g·width + r]`` holds
    that number for each group ``g``.
    """

    __slots__ = ("base", "below", "bounds", "group")

    def __init__(
        self, groups: dict[tuple[float, ...], int], group: list[int], base: list[int]
    ) -> None:
        bounds = sorted({b for own in groups for b in own})
        width = len(bounds) + 1
        below = np.zeros((len(groups), width), dtype=np.intp)
        for own, g in groups.items():
            mine = set(own)
            below[g, 1:] = np.cumsum([b in mine for b in bounds])
        self.bounds = np.array(bounds, dtype=np.float64)
        self.below = below.ravel()
        self.group = np.array(group, dtype=np.intp) * width
        self.base = np.array(base, dtype=np.intp)

    def add_up(self, pending: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], ...]:
        """``(counts per bucket of the flat array, sums per slot)`` of ``pending``."""
        slots = pending[0::2].astype(np.intp)
        values = pending[1::2]
        r = np.searchsorted(self.bounds, values)  # side="left"
        flat = self.base[slots] + self.below[self.group[slots] + r]
        sums = np.bincount(slots, weights=values)
        if np.isnan(sums).any():  # a NaN observed (or inf - inf): where are the NaNs?
            nan = np.isnan(values)  # bisect_left puts them in the first bucket
            flat[nan] = self.base[slots[nan]]
        return np.bincount(flat), sums
