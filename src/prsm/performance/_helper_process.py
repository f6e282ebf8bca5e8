"""A helper interpreter reached over two pipes, for work that must not share the event loop's
process: the optimiser's solves, and the semantic cache's models.

Code that holds the GIL for milliseconds at a time (a PyTorch forward pass, a solver) run
in a thread of the gateway's process still stalls its event loop: the loop thread waits for
the GIL up to the switch interval (5 ms) at every step, and the garbage collector, triggered
by whichever thread allocates, walks every object of the process on the loop thread. A
helper process has its own GIL and heap.

The helper is a fresh interpreter (a plain subprocess: nothing of the caller is inherited and
its main module is not re-imported, unlike ``multiprocessing``'s ``spawn``), started on first
use and reused. Each request is ``(func, args, stream)`` pickled down one pipe (``func`` is
pickled by name, so it must be importable); the helper answers on the other with
``("event", x)`` (streamed calls only), then ``("done", result)`` or ``("error", text)``.
One request at a time: :meth:`HelperProcess.call` (blocking, for a worker thread: waiting
on the pipe releases the GIL) and :meth:`HelperProcess.acall` (on the event loop, without a
thread) take a lock; streaming callers read :attr:`HelperProcess.events` themselves
(``loop.add_reader``) under their own lock. A helper that dies is started again on
the next request; one that runs past a call's limit is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import traceback
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from ._heap import HeapTrimmer
from ._helper_async import acquire, frame, readable, shielded, write
from .errors import HelperProcessError

#: seconds a helper may take to start and load a model (an interpreter, torch, the weights)
LOAD_TIMEOUT = 120.0
#: what a call asks to be prepared first: ``(func, args)``, run once per start of the helper
Prepare = tuple[Callable[..., Any], tuple[Any, ...]]


def _log(line: str) -> None:  # pragma: no cover - the child's
    print(f"prsm helper {os.getpid()}: {line}", file=sys.stderr, flush=True)


def _main(requests_fd: int, events_fd: int) -> None:  # pragma: no cover - the child's entry
    _serve(Connection(requests_fd, writable=False), Connection(events_fd, readable=False))


def _serve(requests: Connection, events: Connection) -> None:  # pragma: no cover - child
    """The helper's loop: one request at a time, until the parent closes the pipe; after each
    answer, the heap its forward passes freed goes back to the OS past a limit (as in a worker)."""
    heap = HeapTrimmer.for_this_process(_log)
    while True:
        try:
            msg = requests.recv()
        except EOFError:
            return
        func, args, stream = msg
        try:
            kwargs = {"report": lambda e: events.send(("event", e))} if stream else {}
            out = func(*args, **kwargs)
            events.send(("done", out))
        except Exception as exc:  # sent back and re-raised in the parent with its traceback
            events.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
        heap.after_batch()  # after the answer: the trim does not delay it


class HelperProcess:
    """One helper interpreter, reused across requests; :meth:`close` (or garbage collection)
    stops it. ``name`` appears in errors and in the helper's command line."""

    def __init__(self, name: str, *, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.env = dict(env or {})
        self.starts = 0
        self._prepared: set[tuple[Any, ...]] = set()  # by this start of the helper
        self.lock = threading.Lock()  # one call at a time
        self._loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self._requests: Connection | None = None
        self._events: Connection | None = None
        self._finalizer: weakref.finalize[Any, HelperProcess] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else int(self._proc.pid)

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def events(self) -> Connection:
        """The pipe the answers come on (started helpers only)."""
        if self._events is None:
            raise HelperProcessError(self.name, "not started")
        return self._events

    def send(self, func: Callable[..., Any], args: tuple[Any, ...], stream: bool) -> None:
        """Hand ``func(*args)`` to the helper, starting it (again) if it is not running."""
        if not self.alive:
            self.close()
            self._start()
        assert self._requests is not None
        try:
            self._requests.send((func, args, stream))
        except OSError as exc:  # it died between the check and the send
            self.close()
            raise HelperProcessError(self.name, f"exited before the request: {exc}") from exc

    def answer(self, kind: str, payload: Any) -> Any:
        """The result of a ``done`` message; raises for an ``error`` one."""
        if kind == "done":
            return payload
        if kind == "error":
            raise HelperProcessError(self.name, f"failed: {payload}")
        raise HelperProcessError(self.name, f"sent an unexpected {kind!r} message")

    def receive(self) -> tuple[str, Any]:
        """The next message; the helper is closed and an error raised if it has died."""
        try:
            kind, payload = self.events.recv()
        except (EOFError, OSError):
            code = None
            if self._proc is not None:  # its pipe closed: it is exiting, if not gone already
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = self._proc.wait(1.0)
            self.close()
            raise HelperProcessError(self.name, f"exited unexpectedly (code {code})") from None
        return str(kind), payload

    def call(self, func: Callable[..., Any], args: tuple[Any, ...], timeout: float, *,
             prepare: Prepare | None = None) -> Any:  # fmt: skip
        """``func(*args)`` in the helper, blocking the calling thread (not the GIL) until it
        answers; first ``prepare``'s ``(func, args)`` as :meth:`prepare` would run it (once per
        start, within :data:`LOAD_TIMEOUT`). Raises :class:`TimeoutError` past ``timeout``
        seconds (the helper is killed, and started again on the next call) and
        :class:`HelperProcessError` if it fails or dies."""
        with self.lock:
            if prepare is not None:
                self._prepare(*prepare, LOAD_TIMEOUT)
            return self._call(func, args, timeout)

    async def acall(self, func: Callable[..., Any], args: tuple[Any, ...], limit: float, *,
                    prepare: Prepare | None = None) -> Any:  # fmt: skip
        """:meth:`call` from the event loop, without a worker thread (:mod:`._helper_async`):
        the same answers, errors and limits. Shielded: a cancelled caller leaves the call to
        finish, so that the helper's answer is read by the call that asked for it."""
        return await shielded(self._acall_locked(func, args, limit, prepare))

    async def _acall_locked(self, func: Callable[..., Any], args: tuple[Any, ...],
                            limit: float, prepare: Prepare | None) -> Any:  # fmt: skip
        async with self._loop_lock():
            await acquire(self.lock, limit + LOAD_TIMEOUT)
            try:
                key = None if prepare is None else self._unprepared(*prepare)
                if prepare is not None and key is not None:
                    await self._acall(*prepare, LOAD_TIMEOUT)
                    self._prepared.add(key)
                return await self._acall(func, args, limit)
            finally:
                self.lock.release()

    async def _acall(self, func: Callable[..., Any], args: tuple[Any, ...], limit: float) -> Any:
        if not self.alive:
            self.close()
            self._start()
        assert self._requests is not None
        try:
            await write(self._requests.fileno(), frame((func, args, False)))
            ready = await readable(self.events.fileno(), limit)
        except OSError as exc:  # it died between the check and the write
            self.close()
            raise HelperProcessError(self.name, f"exited before the request: {exc}") from exc
        except asyncio.CancelledError:  # its loop is closing: the answer would be left unread
            self.close()
            raise
        if not ready:
            self.close()
            raise TimeoutError(f"{self.name}: {func.__name__} ran past {limit:g}s")
        kind, payload = self.receive()
        return self.answer(kind, payload)

    def _loop_lock(self) -> asyncio.Lock:
        """The running loop's lock for this helper's async callers (one call at a time
        without each polling the thread lock)."""
        loop = asyncio.get_running_loop()
        lock = self._loop_locks.get(loop)
        if lock is None:
            lock = self._loop_locks[loop] = asyncio.Lock()
        return lock

    def prepare(self, func: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> None:
        """``func(*args)`` once per start of the helper (loading a model: later calls then
        find it loaded; after a restart it is loaded again)."""
        with self.lock:
            self._prepare(func, args, timeout)

    def _prepare(self, func: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> None:
        key = self._unprepared(func, args)
        if key is not None:
            self._call(func, args, timeout)
            self._prepared.add(key)

    def _unprepared(self, func: Callable[..., Any],
                    args: tuple[Any, ...]) -> tuple[Any, ...] | None:  # fmt: skip
        """The key of ``func(*args)`` if this start of the helper has not run it yet, else
        ``None``."""
        key = (func.__module__, func.__qualname__, *args)
        return None if self.alive and key in self._prepared else key

    def _call(self, func: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Any:
        self.send(func, args, False)
        if not self.events.poll(timeout):
            self.close()
            raise TimeoutError(f"{self.name}: {func.__name__} ran past {timeout:g}s")
        kind, payload = self.receive()
        return self.answer(kind, payload)

    def _start(self) -> None:
        req_r, req_w = os.pipe()
        ev_r, ev_w = os.pipe()
        root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        code = (
            "import sys; from prsm.performance._helper_process import _main; "
            "_main(int(sys.argv[1]), int(sys.argv[2]))"
        )
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", code, str(req_r), str(ev_w), self.name],
                pass_fds=(req_r, ev_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # HiGHS prints a banner
                env=env,
            )
        finally:
            os.close(req_r)
            os.close(ev_w)
        requests, events = Connection(req_w, readable=False), Connection(ev_r, writable=False)
        self._proc, self._requests, self._events = proc, requests, events
        self._prepared.clear()
        self._finalizer = weakref.finalize(self, _stop, proc, requests, events)
        self.starts += 1

    def close(self) -> None:
        """Stop the helper (it is started again on the next request)."""
        if self._finalizer is not None:
            self._finalizer()
        self._proc = self._requests = self._events = self._finalizer = None


def _stop(proc: subprocess.Popen[bytes], requests: Connection, events: Connection) -> None:
    for conn in (requests, events):
        with contextlib.suppress(OSError):
            conn.close()
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(1.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(1.0)
