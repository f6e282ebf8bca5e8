"""Awaiting with a deadline, with one loop timer for every request in flight.

``asyncio.timeout`` builds a context manager and arms (then cancels) a loop timer on every
call: a few microseconds on a path that costs the gateway about a hundred. Upstream
timeouts are seconds long and need not be exact to the microsecond, so
:func:`await_with_timeout` files each deadline in a tick of a few milliseconds (a dict insert
and pop per call: :mod:`prsm.performance._ticks`) and one loop timer, armed at the earliest
tick that holds any, cancels the tasks whose deadline passed. A deadline fires at most one
tick late, never early. The semantics are ``asyncio.timeout``'s: the awaited coroutine sees
the cancellation, the caller gets :class:`TimeoutError`, and a cancellation from outside stays
a cancellation.

A hot path can skip the wrapping coroutine: :func:`arm` a deadline for the running task,
``await`` the call itself, ask :func:`expired` in the ``except`` whether a
``CancelledError`` was the deadline's (then treat it as a timeout), and :func:`disarm` in the
``finally`` (what :func:`await_with_timeout` does for one awaitable). A hotter one steps the
call by hand first (``coro.send(None)``): a call that answers without suspending needs no
deadline at all, and one that suspended is awaited on with :func:`resume`. An entry's
:meth:`Armed.fire` is what its deadline does; a subclass may do more (the orchestrator's
hedged first attempt fires once at its hedge delay, then at its deadline), filed in the
loop's timers (:func:`loop_timers`).
"""

from __future__ import annotations

import asyncio
import types
import weakref
from collections.abc import Awaitable, Coroutine, Generator
from types import CoroutineType
from typing import Any, TypeVar

import msgspec

from ._ticks import TickTimers

R = TypeVar("R")


class Armed(msgspec.Struct, eq=False):
    """A deadline armed for one task (:func:`arm`): filed at ``tick`` in ``timers``;
    ``cancelling`` is the task's count of cancellations asked when it was armed, ``fired``
    whether it has fired. A struct (made in C, at half the cost of a class with an
    ``__init__``); compared by identity, as an object (it is a key in ``timers``)."""

    timers: TickTimers[Armed, None]
    task: asyncio.Task[Any]
    tick: int
    cancelling: int
    fired: bool

    def fire(self) -> None:
        """The deadline passed: cancel the task (:func:`expired` then tells it so)."""
        self.fired = True
        self.task.cancel()


def _fire(entry: Armed, _: None) -> None:
    entry.fire()


_sweepers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TickTimers[Armed, None]] = (
    weakref.WeakKeyDictionary()
)
_last: TickTimers[Armed, None] | None = None  # the timers of the loop that asked last


def loop_timers(loop: asyncio.AbstractEventLoop) -> TickTimers[Armed, None]:
    """The deadline timers of ``loop`` (made on first use); each fires its entry's
    :meth:`Armed.fire`."""
    global _last  # noqa: PLW0603 (a one-entry cache: the loop's sweeper without a weakref lookup)
    timers = _last
    if timers is None or timers.loop is None or timers.loop() is not loop:
        timers = _sweepers.get(loop)
        if timers is None:
            timers = _sweepers[loop] = TickTimers(_fire)
        _last = timers
    return timers


def arm(seconds: float) -> Armed | None:
    """Arm a deadline ``seconds`` from now for the running task: once it passes (at most
    :data:`~prsm.performance._ticks.RESOLUTION` later) the task is cancelled. ``None`` when
    no task runs (nothing to cancel: use :func:`await_with_timeout`)."""
    return arm_in(asyncio.get_running_loop(), seconds)


def arm_in(loop: asyncio.AbstractEventLoop, seconds: float) -> Armed | None:
    """:func:`arm` where the running ``loop`` is at hand (asking for it costs a system call
    in Python 3.11: ``getpid``)."""
    task = asyncio.current_task(loop)
    if task is None:
        return None
    timers = loop_timers(loop)
    armed = Armed(timers, task, 0, task.cancelling(), False)
    armed.tick = timers.add(loop, armed, None, seconds)
    return armed


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
    armed.timers.discard(armed, armed.tick)
    if armed.fired:
        armed.task.uncancel()


@types.coroutine
def resume(
    call: Coroutine[Any, Any, R] | Generator[Any, Any, R], yielded: Any
) -> Generator[Any, Any, R]:
    """``await`` a call that was stepped by hand (``yielded = call.send(None)`` gave what it
    waits on) from where it stopped: the task waits on ``yielded``, and whatever the task
    then sends or throws in (its cancellation) goes on to ``call``, as ``await call`` would
    have passed it. Returns the call's value or raises its error."""
    while True:
        try:
            yield yielded
        except BaseException as exc:  # thrown in by the task (a cancellation): passed on
            try:
                yielded = call.throw(exc)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            continue
        result: R = yield from call  # type: ignore[misc]
        return result


async def await_with_timeout(awaitable: Awaitable[R], seconds: float) -> R:
    """``await awaitable``, raising :class:`TimeoutError` once ``seconds`` have passed (at
    most :data:`~prsm.performance._ticks.RESOLUTION` later); the awaitable is cancelled then.
    It is stepped by hand first: one that is done without waiting (a stream's next chunk
    already read) arms no deadline at all."""
    call: Any = awaitable if type(awaitable) is CoroutineType else awaitable.__await__()
    try:
        waits_on = call.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    armed = arm(seconds)
    if armed is None:  # not in a task (nothing to cancel): the standard way
        async with asyncio.timeout(seconds):
            return await resume(call, waits_on)
    try:
        return await resume(call, waits_on)
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
