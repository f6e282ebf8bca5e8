"""Timers for many short waits at well under a microsecond each: what hedge delays run on.

A loop timer per request (``loop.call_later`` then ``cancel``) costs a few microseconds on a
path that costs about ten, and almost every hedge timer is cancelled unfired (the first
attempt answers in time); a hedge delay need not be exact to the millisecond. So, as
:mod:`prsm.performance._awaiting` does for deadlines, each entry (a key and a value) is filed
in a tick of :data:`RESOLUTION` seconds (a dict insert, and a pop when cancelled) and one loop
timer, armed at the earliest tick that holds any, hands the entries whose time has come to
``on_fire(key, value)``. An entry fires at most one tick late, never early.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

log = logging.getLogger("prsm.performance.orchestrator")

#: seconds per tick: how late an entry may fire at most
RESOLUTION = 0.005


class TickTimers(Generic[K, V]):
    """Entries to fire at a loop time, grouped by tick, for one event loop (another loop,
    e.g. a test's, starts afresh)."""

    __slots__ = ("heap", "loop", "on_fire", "ticks", "timer", "timer_tick")

    def __init__(self, on_fire: Callable[[K, V], Any]) -> None:
        self.on_fire = on_fire
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ticks: dict[int, dict[K, V]] = {}
        self.heap: list[int] = []  # ticks that hold entries (or held: emptied lazily)
        self.timer: asyncio.TimerHandle | None = None
        self.timer_tick = 0

    def add(self, loop: asyncio.AbstractEventLoop, key: K, value: V, delay: float) -> int:
        """File ``key`` (with ``value``) to fire ``delay`` seconds from now; returns its tick,
        for :meth:`discard`. A key is filed once at a time."""
        if loop is not self.loop:
            self._reset(loop)
        tick = int((loop.time() + delay) / RESOLUTION) + 1
        entries = self.ticks.get(tick)
        if entries is None:
            entries = self.ticks[tick] = {}
            heapq.heappush(self.heap, tick)
            if self.timer is None or tick < self.timer_tick:
                self._arm(loop, tick)
        entries[key] = value
        return tick

    def discard(self, key: K, tick: int) -> None:
        """Forget ``key`` (filed at ``tick``) unfired; nothing if it fired already."""
        entries = self.ticks.get(tick)
        if entries is not None:
            entries.pop(key, None)  # an emptied tick is dropped when its time comes

    def _reset(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.loop = loop
        self.ticks = {}
        self.heap = []
        self.timer = None
        self.timer_tick = 0

    def _arm(self, loop: asyncio.AbstractEventLoop, tick: int) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer_tick = tick
        self.timer = loop.call_at(tick * RESOLUTION, self._fire)

    def _fire(self) -> None:
        self.timer = None
        loop = self.loop
        if loop is None:
            return
        now = loop.time()
        heap = self.heap
        due: list[tuple[K, V]] = []
        while heap and heap[0] * RESOLUTION <= now:
            due.extend(self.ticks.pop(heapq.heappop(heap), {}).items())
        if heap:
            self._arm(loop, heap[0])
        on_fire = self.on_fire
        for key, value in due:
            try:
                on_fire(key, value)
            except Exception:  # logged, and the other entries still fire
                log.exception("a timer's callback failed (key %r)", key)


__all__ = ["RESOLUTION", "TickTimers"]
