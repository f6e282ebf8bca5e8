"""Awaiting with a deadline, with one loop timer for every request in flight.

``asyncio.timeout`` builds a context manager and arms (then cancels) a loop timer on every
call: a few microseconds on a path that costs the gateway about a hundred. Upstream
timeouts are seconds long and need not be exact to the microsecond, so
:func:`await_with_timeout` files each deadline in a tick of :data:`RESOLUTION` seconds (a
set insert and discard per call) and one loop timer, armed at the earliest tick that holds
any, cancels the tasks whose deadline passed. A deadline fires at most one tick late, never
early. The semantics are ``asyncio.timeout``'s: the awaited coroutine sees the cancellation,
the caller gets :class:`TimeoutError`, and a cancellation from outside stays a cancellation.

A hot path can skip the wrapping coroutine: :func:`arm` a deadline for the running task,
``await`` the call itself, ask :func:`expired` in the ``except`` whether a
``CancelledError`` was the deadline's (then treat it as a timeout), and :func:`disarm` in the
``finally`` (what :func:`await_with_timeout` does for one awaitable).
"""

from __future__ import annotations

import asyncio
import heapq
import math
import weakref
from collections.abc import Awaitable
from typing import TypeVar

R = TypeVar("R")

#: seconds per tick: how late a deadline may fire at most
RESOLUTION = 0.005


class Armed:
    """A deadline armed for one task (:func:`arm`)."""

    __slots__ = ("cancelling", "fired", "sweeper", "task", "tick")

    def __init__(self, sweeper: _Sweeper, task: asyncio.Task[object], tick: int) -> None:
        self.sweeper = sweeper
        self.task = task
        self.tick = tick
        self.cancelling = task.cancelling()
        self.fired = False


class _Sweeper:
    """One per event loop: the deadlines of the calls in flight, grouped by tick."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = weakref.ref(loop)
        self.ticks: dict[int, set[Armed]] = {}
        self.heap: list[int] = []  # the ticks that hold entries (or held: emptied lazily)
        self.timer: asyncio.TimerHandle | None = None
        self.timer_tick = 0

    def add(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[object],
            deadline: float) -> Armed:  # fmt: skip
        tick = math.ceil(deadline / RESOLUTION)
        entries = self.ticks.get(tick)
        if entries is None:
            entries = self.ticks[tick] = set()
            heapq.heappush(self.heap, tick)
            if self.timer is None or tick < self.timer_tick:
                self._arm(loop, tick)
        entry = Armed(self, task, tick)
        entries.add(entry)
        return entry

    def _arm(self, loop: asyncio.AbstractEventLoop, tick: int) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer_tick = tick
        self.timer = loop.call_at(tick * RESOLUTION, self._fire)

    def _fire(self) -> None:
        self.timer = None
        loop = self.loop()
        if loop is None:
            return
        now = loop.time()
        heap = self.heap
        while heap and heap[0] * RESOLUTION <= now:
            for entry in self.ticks.pop(heapq.heappop(heap), ()):
                entry.fired = True
                entry.task.cancel()
        if heap:
            self._arm(loop, heap[0])


_sweepers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Sweeper] = (
    weakref.WeakKeyDictionary()
)
_last: _Sweeper | None = None  # the sweeper of the loop that asked last


def arm(seconds: float) -> Armed | None:
    """Arm a deadline ``seconds`` from now for the running task: once it passes (at most
    :data:`RESOLUTION` later) the task is cancelled. ``None`` when no task runs (nothing to
    cancel: use :func:`await_with_timeout`)."""
    global _last  # noqa: PLW0603 (a one-entry cache: the loop's sweeper without a weakref lookup)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    if task is None:
        return None
    sweeper = _last
    if sweeper is None or sweeper.loop() is not loop:
        sweeper = _sweepers.get(loop)
        if sweeper is None:
            sweeper = _sweepers[loop] = _Sweeper(loop)
        _last = sweeper
    return sweeper.add(loop, task, loop.time() + seconds)


def expired(armed: Armed) -> bool:
    """In an ``except CancelledError``: whether the cancellation was this deadline's alone
    (then it is taken back: raise a timeout instead); ``False`` when it came (also) from
    outside and must stay a cancellation."""
    if not armed.fired:
        return False
    armed.fired = False
    return armed.task.uncancel() <= armed.cancelling


def disarm(armed: Armed) -> None:
    """The awaited call is over (in a ``finally``): forget the deadline; if it fired but the
    call swallowed the cancellation and returned, take the cancellation back."""
    entries = armed.sweeper.ticks.get(armed.tick)
    if entries is not None:
        entries.discard(armed)  # an emptied tick is dropped when its time comes
    if armed.fired:
        armed.task.uncancel()


async def await_with_timeout(awaitable: Awaitable[R], seconds: float) -> R:
    """``await awaitable``, raising :class:`TimeoutError` once ``seconds`` have passed (at
    most :data:`RESOLUTION` later); the awaitable is cancelled then."""
    armed = arm(seconds)
    if armed is None:  # not in a task (nothing to cancel): the standard way
        async with asyncio.timeout(seconds):
            return await awaitable
    try:
        return await awaitable
    except asyncio.CancelledError:
        if expired(armed):
            raise TimeoutError(f"no answer within {seconds}s") from None
        raise
    finally:
        disarm(armed)


async def stop_task(task: asyncio.Task[object] | None) -> None:
    """Cancel a background ``task`` and wait for it to end. Its own failure is raised; a
    cancellation of the caller (not of ``task``) goes on as a cancellation."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
