"""Awaiting with a deadline, without paying for a timer when the answer is immediate.

``asyncio.timeout`` arms a loop timer (a few microseconds) on every call. An in-process
upstream often answers without ever suspending; :func:`await_with_timeout` runs the
coroutine's first step itself and arms the timer only if the coroutine suspends, then
forwards the rest of its steps exactly as ``await`` would (``yield from`` semantics:
values to the task, cancellations and other throws into the coroutine).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine, Generator
from types import CoroutineType
from typing import Any, TypeVar, cast

R = TypeVar("R")


class _Resumed(Awaitable[R]):
    """The rest of a coroutine whose first step already ran and yielded ``pending``."""

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, R], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, None, R]:
        coro = self._coro
        pending = self._pending
        while True:
            try:
                yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # forwarded into the coroutine, as ``await`` does
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return cast(R, stop.value)
            else:
                try:
                    pending = coro.send(None)
                except StopIteration as stop:
                    return cast(R, stop.value)


async def await_with_timeout(awaitable: Awaitable[R], seconds: float) -> R:
    """``await awaitable``, raising :class:`TimeoutError` after ``seconds``; the
    timer is armed only if the awaitable suspends."""
    if type(awaitable) is not CoroutineType:
        async with asyncio.timeout(seconds):
            return await awaitable
    coro = cast(Coroutine[Any, Any, R], awaitable)
    try:
        pending = coro.send(None)
    except StopIteration as stop:
        return cast(R, stop.value)
    async with asyncio.timeout(seconds):
        return await _Resumed(coro, pending)
