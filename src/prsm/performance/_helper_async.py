"""Calling a helper from the event loop itself, without a worker thread.

A blocking helper call made from a worker thread waits on a pipe without the GIL, but the
thread still runs Python around each wait (pickling, the pipe's framing, the future's
hand-back to the loop) and takes the GIL back for it, from the loop that wants it too. An
``acall`` instead runs that Python on the loop, where the loop's own accounting sees it:
the request is written with non-blocking writes (the loop runs others while a pipe is full)
and the answer read once the loop reports its descriptor readable.

The framing is :mod:`multiprocessing.connection`'s (a 4-byte big-endian length, or ``-1``
and an 8-byte one, then the pickle), so a helper reads either kind of caller's requests
with the same ``Connection.recv``. One call at a time a helper: an async caller takes the
helper's lock too, without blocking the loop (:func:`acquire`).
"""

from __future__ import annotations

import asyncio
import os
import struct
import threading
import time
from collections.abc import Coroutine
from multiprocessing.reduction import ForkingPickler
from typing import Any, TypeVar

T = TypeVar("T")

#: how often an async caller looks again at a lock a blocking caller holds (seconds)
LOCK_POLL = 0.001


def frame(obj: Any) -> bytes:
    """``obj`` pickled and framed as :meth:`multiprocessing.connection.Connection.send` does."""
    payload = bytes(ForkingPickler.dumps(obj))
    n = len(payload)
    if n > 0x7FFFFFFF:
        return struct.pack("!i", -1) + struct.pack("!Q", n) + payload
    return struct.pack("!i", n) + payload


async def write(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, waiting on the loop (not blocking it) while the pipe
    or socket is full."""
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    blocking = os.get_blocking(fd)
    os.set_blocking(fd, False)
    try:
        while view:
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                room: asyncio.Future[None] = loop.create_future()
                loop.add_writer(fd, _settle, room)
                try:
                    await room
                finally:
                    loop.remove_writer(fd)
    finally:
        os.set_blocking(fd, blocking)


async def readable(fd: int, limit: float) -> bool:
    """Whether ``fd`` has something to read within ``limit`` seconds."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, _settle, ready)
    try:
        await asyncio.wait_for(ready, limit)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)


async def acquire(lock: threading.Lock, limit: float) -> None:
    """Take ``lock`` without blocking the loop: at once when it is free, else looking again
    every :data:`LOCK_POLL` seconds (a blocking caller in another thread holds it) up to
    ``limit``. Cancellation-safe: nothing is left holding it."""
    deadline = time.monotonic() + limit
    while not lock.acquire(blocking=False):
        if time.monotonic() > deadline:
            raise TimeoutError(f"a helper stayed busy past {limit:g}s")
        await asyncio.sleep(LOCK_POLL)


async def shielded(call: Coroutine[Any, Any, T]) -> T:
    """Run ``call`` to its end even if the caller is cancelled: a helper call abandoned
    mid-way would leave its answer to be read as the next call's (a call cancelled anyway,
    when its loop shuts down, closes its helper or connection instead)."""
    task = asyncio.ensure_future(call)
    task.add_done_callback(_retrieve)
    return await asyncio.shield(task)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """The outcome of a call whose caller left: read, so that its error (which the caller
    would have had) is not reported as never retrieved."""
    if not task.cancelled():
        task.exception()


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
