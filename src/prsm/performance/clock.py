"""Time as a dependency: every driver takes a :class:`Clock`; tests pass a :class:`ManualClock`.

``monotonic()`` is for durations and deadlines, ``time()`` for wall-clock stamps (history,
logs), ``sleep()`` is how drivers wait. Policies never read a clock: they are given ``now``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time as _time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Where drivers read the time and how they wait."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for durations and deadlines)."""
        ...

    def time(self) -> float:
        """Seconds since the Unix epoch (for stamps people read)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (never negative)."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic`, :func:`time.time`, :func:`asyncio.sleep`."""

    __slots__ = ()

    def monotonic(self) -> float:
        return _time.monotonic()

    def time(self) -> float:
        return _time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that moves only when told to; ``sleep`` waits until ``advance`` passes its end.

    ``advance(s)`` wakes every sleeper whose time has come, in order. Nothing ever really
    sleeps, so tests of timers, breakers and loops run in microseconds and never flake.
    """

    def __init__(self, start: float = 0.0, *, wall_offset: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._wall_offset = wall_offset
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._wall_offset + self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    @property
    def sleepers(self) -> int:
        """How many coroutines are waiting in :meth:`sleep`."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake the sleepers whose time has come."""
        if seconds < 0:
            raise ValueError(f"seconds: cannot move a clock backwards ({seconds})")
        self.set(self._now + seconds)

    def set(self, now: float) -> None:
        """Move time to ``now`` (not backwards) and wake the sleepers whose time has come."""
        if now < self._now:
            raise ValueError(f"now: cannot move a clock backwards ({now} < {self._now})")
        self._now = now
        while self._sleepers and self._sleepers[0][0] <= now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
