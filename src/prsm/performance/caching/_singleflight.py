"""Single-flight: concurrent calls for the same key share one computation.

The first caller starts the computation as its own task; later callers wait for it. All of
them get its result, or its exception. The task is shielded from any one caller's
cancellation, so the others still get the answer (and the cache still gets filled).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Deduplicates concurrent computations by key."""

    def __init__(self) -> None:
        self._calls: dict[str, asyncio.Future[T]] = {}
        self.leaders = 0
        self.followers = 0

    def in_flight(self, key: str) -> bool:
        """Whether a computation for ``key`` is running."""
        return key in self._calls

    async def do(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        """``await fn()`` unless a call for ``key`` is running, in which case wait for it."""
        task = self._calls.get(key)
        if task is None:
            task = asyncio.ensure_future(fn())
            self._calls[key] = task
            task.add_done_callback(lambda t: self._done(key, t))
            self.leaders += 1
        else:
            self.followers += 1
        return await asyncio.shield(task)

    def _done(self, key: str, task: asyncio.Future[T]) -> None:
        if self._calls.get(key) is task:
            del self._calls[key]
        if not task.cancelled():
            # the waiters re-raise it; this marks it retrieved when nobody was left waiting
            task.exception()
