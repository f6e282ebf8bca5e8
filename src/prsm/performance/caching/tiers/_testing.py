"""An in-memory :class:`~.base.CacheTier` for tests: a plain dict, expiry on the injected
clock, and fault injection (a tier that is down, fails the next calls, or holds a corrupt
entry)."""

from __future__ import annotations

from collections.abc import Sequence

from ...clock import Clock, SystemClock
from ...errors import CacheError


class InMemoryTier:
    """A dict-backed tier. Set ``down = True`` (or call :meth:`fail_next`) to make calls raise
    :class:`CacheError` the way a dead Redis or a full disk would; :meth:`corrupt` flips a
    byte of a stored value. ``calls`` counts the calls that reached the tier."""

    def __init__(self, name: str = "fake", *, clock: Clock | None = None) -> None:
        self.name = name
        self.clock: Clock = clock or SystemClock()
        self.data: dict[str, tuple[bytes, float | None, tuple[str, ...]]] = {}
        self.down = False
        self.calls = 0
        self._fail_next = 0

    def fail_next(self, n: int = 1) -> None:
        """Make the next ``n`` calls fail."""
        self._fail_next += n

    def corrupt(self, key: str) -> None:
        """Flip the last byte of the value under ``key``."""
        value, expires, tags = self.data[key]
        self.data[key] = (value[:-1] + bytes([value[-1] ^ 0xFF]), expires, tags)

    def _enter(self) -> None:
        self.calls += 1
        if self.down:
            raise CacheError(self.name, "backend is down (injected)")
        if self._fail_next:
            self._fail_next -= 1
            raise CacheError(self.name, "call failed (injected)")

    async def get(self, key: str) -> bytes | None:
        self._enter()
        item = self.data.get(key)
        if item is None:
            return None
        if item[1] is not None and item[1] <= self.clock.monotonic():
            del self.data[key]
            return None
        return item[0]

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, tags: Sequence[str] = ()
    ) -> None:
        self._enter()
        expires = None if ttl is None else self.clock.monotonic() + ttl
        self.data[key] = (bytes(value), expires, tuple(tags))

    async def delete(self, key: str) -> bool:
        self._enter()
        return self.data.pop(key, None) is not None

    async def delete_prefix(self, prefix: str) -> int:
        self._enter()
        doomed = [k for k in self.data if k.startswith(prefix)]
        for k in doomed:
            del self.data[k]
        return len(doomed)

    async def delete_tag(self, tag: str) -> int:
        self._enter()
        doomed = [k for k, (_, _, tags) in self.data.items() if tag in tags]
        for k in doomed:
            del self.data[k]
        return len(doomed)

    async def clear(self) -> None:
        self._enter()
        self.data.clear()

    async def aclose(self) -> None:
        self.data.clear()
