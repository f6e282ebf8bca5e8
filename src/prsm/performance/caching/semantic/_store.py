"""Where semantic entries live, behind :class:`EntryStore`.

* :class:`MemoryStore`: this process only (tests, ``data_dir`` unset).
* ``SQLiteStore`` (:mod:`._store_sqlite`): a SQLite file (WAL) in the data directory, shared
  by the processes on one machine: keys come from SQLite, and a change log keeps every
  process's index in step; the index is rebuilt from it on start, so entries survive restarts.
* ``RedisStore`` (:mod:`._store_redis`): entries are Redis hashes (with Redis TTLs) shared by
  every process; each insert and delete is also appended to a Redis stream, which every
  process follows to keep its in-memory index in step. On start a process reads the stream's
  last id, loads every entry, then follows the stream from that id, so nothing added meanwhile
  is missed.

Values are JSON (never pickle); vectors are raw float32 bytes, checked for length on read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ...errors import CacheIntegrityError


@dataclass(slots=True)
class Entry:
    """One cached answer: its namespace, the query it answered, the vector of that query."""

    key: int
    namespace: str
    query: str
    result: Any
    vector: np.ndarray
    created: float
    expires: float | None = None

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


OnAdd = Callable[[Entry], None]
OnDelete = Callable[[Sequence[int]], None]


class EntryStore(Protocol):
    """Keeps entries; ``load`` returns what exists, ``follow`` reports other writers."""

    async def load(self, now: float) -> list[Entry]: ...

    async def next_key(self) -> int: ...

    async def put(self, entry: Entry) -> None: ...

    async def delete(self, keys: Sequence[int]) -> None: ...

    async def follow(self, on_add: OnAdd, on_delete: OnDelete) -> None:
        """Run until cancelled, reporting entries added or deleted by other processes."""
        ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """No persistence: the in-memory index is the only copy."""

    def __init__(self) -> None:
        self._next = 0

    async def load(self, now: float) -> list[Entry]:
        return []

    async def next_key(self) -> int:
        self._next += 1
        return self._next

    async def put(self, entry: Entry) -> None:
        return None

    async def delete(self, keys: Sequence[int]) -> None:
        return None

    async def follow(self, on_add: OnAdd, on_delete: OnDelete) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _vector(blob: bytes, key: object, dim: int | None) -> np.ndarray:
    if len(blob) % 4 or (dim is not None and len(blob) != 4 * dim):
        raise CacheIntegrityError("semantic", str(key), f"vector of {len(blob)} bytes")
    return np.frombuffer(blob, dtype=np.float32).copy()
