"""L1: an in-process LRU bounded by entry count and by bytes, with a TTL per entry.

Every operation is O(1) (an :class:`~collections.OrderedDict` keeps recency order; eviction
pops its oldest end), except prefix and tag invalidation, which touch only the keys they
remove (tags) or scan the keys (prefixes). The synchronous ``*_nowait`` methods are the fast
path; the ``async`` methods make it a :class:`~.base.CacheTier` for bytes.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from ...clock import Clock, SystemClock
from ...errors import ConfigError

V = TypeVar("V")

# An entry: (value, expires_at (inf: never), size in bytes, tags)
_Entry = tuple[Any, float, int, tuple[str, ...]]
_NEVER = float("inf")


def _hit_path(
    lookup: Callable[[str], _Entry | None],
    touch: Callable[[str], None],
    now: Callable[[], float],
    expired: Callable[[str], None],
) -> Callable[[str], Any]:
    def get_nowait(key: str) -> Any:
        entry = lookup(key)
        if entry is None:
            return None
        if entry[1] <= now():
            expired(key)
            return None
        touch(key)
        return entry[0]

    return get_nowait


class MemoryTier(Generic[V]):
    """LRU cache of at most ``max_entries`` entries and ``max_bytes`` bytes.

    ``sizeof`` measures a value (``len`` by default, right for bytes); a value larger than
    ``max_bytes`` is not stored. Expiry reads ``clock.monotonic()``.
    """

    __slots__ = (
        "_bytes",
        "_data",
        "_now",
        "_sizeof",
        "_tags",
        "evictions",
        "expirations",
        "get_nowait",
        "max_bytes",
        "max_entries",
        "name",
        "rejected",
    )

    def __init__(
        self,
        max_entries: int = 1000,
        max_bytes: int = 64 * 1024 * 1024,
        *,
        clock: Clock | None = None,
        name: str = "l1",
        sizeof: Callable[[V], int] = len,  # type: ignore[assignment]
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigError("max_entries", f"must be an integer >= 1, got {max_entries!r}")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ConfigError("max_bytes", f"must be an integer >= 1, got {max_bytes!r}")
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._sizeof = sizeof
        self._data: OrderedDict[str, _Entry] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._bytes = 0
        # the real clock's monotonic() is time.monotonic: call it directly on the hot path
        self._now: Callable[[], float] = (
            time.monotonic if clock is None or isinstance(clock, SystemClock) else clock.monotonic
        )
        self.evictions = 0
        self.expirations = 0
        self.rejected = 0
        self.get_nowait = _hit_path(
            self._data.get, self._data.move_to_end, self._now, self._expired
        )

    # -- synchronous fast path -------------------------------------------------------------

    #: ``get_nowait(key)``: the value under ``key`` (marking it most recently used), or
    #: ``None``. A closure over the dict's bound methods and the clock, built in
    #: ``__init__``: the hit path is one lookup, one clock read and one move, nothing else.
    get_nowait: Callable[[str], V | None]

    def _expired(self, key: str) -> None:
        self._drop(key)
        self.expirations += 1

    def expires_at(self, key: str) -> float | None:
        """When ``key`` expires on this tier's clock (``None``: never, or absent)."""
        entry = self._data.get(key)
        return None if entry is None or entry[1] == _NEVER else entry[1]

    def set_nowait(
        self,
        key: str,
        value: V,
        ttl: float | None = None,
        tags: Sequence[str] = (),
        *,
        size: int | None = None,
    ) -> bool:
        """Store ``value``; evict least recently used entries to stay in bounds.

        Returns ``False`` (and stores nothing) when the value alone is over ``max_bytes`` or
        ``ttl`` is not positive.
        """
        nbytes = self._sizeof(value) if size is None else size
        if nbytes > self.max_bytes or (ttl is not None and ttl <= 0):
            self._drop(key)
            self.rejected += 1
            return False
        data = self._data
        if key in data:
            self._drop(key)
        tag_t = tuple(tags)
        data[key] = (value, _NEVER if ttl is None else self._now() + ttl, nbytes, tag_t)
        self._bytes += nbytes
        for tag in tag_t:
            members = self._tags.get(tag)
            if members is None:
                self._tags[tag] = {key}
            else:
                members.add(key)
        while len(data) > self.max_entries or self._bytes > self.max_bytes:
            old_key, old = data.popitem(last=False)
            self._unlink(old_key, old)
            self.evictions += 1
        return True

    def delete_nowait(self, key: str) -> bool:
        """Remove ``key``; whether it was there."""
        return self._drop(key)

    def delete_prefix_nowait(self, prefix: str) -> int:
        doomed = [k for k in self._data if k.startswith(prefix)]
        for k in doomed:
            self._drop(k)
        return len(doomed)

    def delete_tag_nowait(self, tag: str) -> int:
        members = self._tags.pop(tag, None)
        if not members:
            return 0
        n = 0
        for k in list(members):
            n += self._drop(k)
        return n

    def clear_nowait(self) -> None:
        self._data.clear()
        self._tags.clear()
        self._bytes = 0

    def _drop(self, key: str) -> bool:
        entry = self._data.pop(key, None)
        if entry is None:
            return False
        self._unlink(key, entry)
        return True

    def _unlink(self, key: str, entry: _Entry) -> None:
        self._bytes -= entry[2]
        for tag in entry[3]:
            members = self._tags.get(tag)
            if members is not None:
                members.discard(key)
                if not members:
                    del self._tags[tag]

    # -- introspection ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def keys(self) -> Iterator[str]:
        """Keys from least to most recently used (expired ones included until touched)."""
        return iter(list(self._data))

    @property
    def nbytes(self) -> int:
        """Bytes held (the sum of the stored values' sizes)."""
        return self._bytes

    # -- CacheTier (async) ------------------------------------------------------------------

    async def get(self, key: str) -> V | None:
        return self.get_nowait(key)

    async def set(
        self, key: str, value: V, ttl: float | None = None, tags: Sequence[str] = ()
    ) -> None:
        self.set_nowait(key, value, ttl, tags)

    async def delete(self, key: str) -> bool:
        return self._drop(key)

    async def delete_prefix(self, prefix: str) -> int:
        return self.delete_prefix_nowait(prefix)

    async def delete_tag(self, tag: str) -> int:
        return self.delete_tag_nowait(tag)

    async def clear(self) -> None:
        self.clear_nowait()

    async def aclose(self) -> None:
        self.clear_nowait()
