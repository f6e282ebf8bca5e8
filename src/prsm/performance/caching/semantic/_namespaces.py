"""The semantic cache's entries by namespace: each namespace's index and entries, bounded.

:class:`Namespaces` keeps, for every namespace, its vector index and its entries in least
recently used order, and which namespace each key lives in. It enforces both bounds of
:class:`SemanticSettings` — ``max_entries`` a namespace and ``max_total_entries`` in all —
and says which keys it evicted or forgot, so the cache can tell its store and its error
bounds. No I/O, no event loop: the cache calls it from the loop.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._index import make_index
from ._settings import SemanticSettings
from ._store import Entry


@dataclass(slots=True)
class NamespaceStats:
    entries: int = 0
    hits: int = 0
    misses: int = 0
    explored: int = 0
    stores: int = 0
    evictions: int = 0
    expirations: int = 0


@dataclass(slots=True)
class Namespace:
    index: Any
    entries: OrderedDict[int, Entry] = field(default_factory=OrderedDict)
    stats: NamespaceStats = field(default_factory=NamespaceStats)


class Namespaces:
    """Namespaces by name, least recently used first, each with its index and entries."""

    def __init__(self, settings: SemanticSettings, dim: int) -> None:
        self.settings = settings
        self.dim = dim
        self._ns: OrderedDict[str, Namespace] = OrderedDict()  # least recently used first
        self._where: dict[int, str] = {}

    def __len__(self) -> int:
        """Entries in all namespaces."""
        return len(self._where)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ns)

    def __getitem__(self, name: str) -> Namespace:
        return self._ns[name]

    def items(self) -> Iterator[tuple[str, Namespace]]:
        return iter(self._ns.items())

    def get(self, name: str) -> Namespace | None:
        return self._ns.get(name)

    def touch(self, name: str) -> None:
        """Mark ``name`` as the most recently used namespace."""
        self._ns.move_to_end(name)

    def open(self, name: str) -> Namespace:
        """``name``'s namespace, made (with an empty index) if it is new; marked as used."""
        ns = self._ns.get(name)
        if ns is None:
            s = self.settings
            index = make_index(
                s.index,
                self.dim,
                switch_at=s.hnsw_min_entries,
                connectivity=s.hnsw_connectivity,
                expansion_add=s.hnsw_expansion_add,
                expansion_search=s.hnsw_expansion_search,
                ivf_lists=s.ivf_lists,
                ivf_probe=s.ivf_probe,
                ivf_train_at=s.ivf_train_at,
            )
            ns = self._ns[name] = Namespace(index)
            if len(self._ns) > s.max_total_entries:  # drop idle empty namespaces
                idle = [n for n, x in self._ns.items() if not x.entries and n != name]
                for n in idle[: len(self._ns) // 2]:
                    del self._ns[n]
        self._ns.move_to_end(name)
        return ns

    def insert(self, entry: Entry) -> list[int]:
        """Put ``entry`` in its namespace's index; returns the keys evicted to make room (the
        namespace's least recently used beyond ``max_entries``; beyond ``max_total_entries``,
        those of the least recently used namespaces)."""
        ns = self.open(entry.namespace)
        ns.index.add([entry.key], entry.vector[None, :])
        ns.entries[entry.key] = entry
        ns.entries.move_to_end(entry.key)
        self._where[entry.key] = entry.namespace
        evicted: list[int] = []
        while len(ns.entries) > self.settings.max_entries:
            evicted.append(self._evict(ns))
        while len(self._where) > self.settings.max_total_entries:
            name, oldest = next(iter(self._ns.items()))
            if not oldest.entries:
                self._ns.pop(name)
                continue
            evicted.append(self._evict(oldest))
        return evicted

    def _evict(self, ns: Namespace) -> int:
        old, _ = ns.entries.popitem(last=False)
        ns.index.remove([old])
        self._where.pop(old, None)
        ns.stats.evictions += 1
        return old

    def forget(self, keys: Sequence[int]) -> list[int]:
        """Remove these keys wherever they are; returns those that were here."""
        gone = []
        for key in keys:
            name = self._where.pop(int(key), None)
            if name is None:
                continue
            ns = self._ns[name]
            ns.entries.pop(int(key), None)
            ns.index.remove([int(key)])
            gone.append(int(key))
        return gone

    def drop(self, names: Sequence[str]) -> list[int]:
        """Remove these namespaces and their entries; returns the keys removed."""
        keys = [k for n in names if n in self._ns for k in self._ns[n].entries]
        self.forget(keys)
        for n in names:
            self._ns.pop(n, None)
        return keys
