"""A solver worker process: solves run there, so the event loop never blocks on them.

The worker is a fresh interpreter started on first use (a plain subprocess, so nothing of the
caller is inherited and its main module is not re-imported, unlike ``multiprocessing``'s
``spawn``) and reused for later solves; requests and answers are pickled over two pipes.
Each solve streams :class:`~._solve.Event` objects back, the parent reads them without
blocking (``loop.add_reader``) and keeps the best answer seen. A solve that runs past its
time limit plus ``grace`` seconds (HiGHS checks its limit only now and then) has its worker
killed; the answer is then the best one the worker reported, and a fresh worker starts on
the next solve.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
import traceback
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from ._problem import Problem, gap
from ._solve import Event, Outcome, SolveOptions, solve

log = logging.getLogger(__name__)
_STOPPED = object()


def _main(requests_fd: int, events_fd: int) -> None:  # pragma: no cover - the child's entry
    _serve(Connection(requests_fd, writable=False), Connection(events_fd, readable=False))


def _serve(requests: Connection, events: Connection) -> None:  # pragma: no cover - child
    """The worker's loop: one request at a time, until the parent closes the pipe."""
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


class SolverWorker:
    """One solver process, reused across solves; :meth:`close` (or garbage collection)
    stops it."""

    def __init__(self, *, grace: float = 2.0) -> None:
        self.grace = grace
        self._proc: subprocess.Popen[bytes] | None = None
        self._requests: Connection | None = None
        self._events: Connection | None = None
        self._lock = asyncio.Lock()
        self._finalizer: weakref.finalize[Any, SolverWorker] | None = None
        self._best: Event | None = None  # of the running solve, for a stopped one
        self._last: Event | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else int(self._proc.pid)

    def _start(self) -> None:
        req_r, req_w = os.pipe()
        ev_r, ev_w = os.pipe()
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        code = (
            "import sys; from prsm.performance.optimize._worker import _main; "
            "_main(int(sys.argv[1]), int(sys.argv[2]))"
        )
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", code, str(req_r), str(ev_w)],
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
        self._finalizer = weakref.finalize(self, _stop, proc, requests, events)

    def close(self) -> None:
        """Stop the worker process (it is started again on the next solve)."""
        if self._finalizer is not None:
            self._finalizer()
        self._proc = self._requests = self._events = self._finalizer = None

    async def solve(
        self,
        problem: Problem,
        opts: SolveOptions,
        on_event: Callable[[Event], None] | None = None,
    ) -> Outcome:
        """Solve ``problem`` in the worker within ``opts.time_limit`` (+ ``grace``)."""
        found = await self._run(solve, (problem, opts), True, opts.time_limit, on_event)
        if found is _STOPPED:
            return _stopped(self._best, self._last, opts.time_limit + self.grace)
        return found  # type: ignore[no-any-return]

    async def call(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        time_limit: float,
        on_event: Callable[[Any], None] | None = None,
    ) -> Any:
        """``func(*args)`` in the worker (``func`` importable by name); with ``on_event``,
        ``func`` also gets ``report=`` and what it reports is passed on as it comes. Raises
        :class:`TimeoutError` past ``time_limit`` (+ ``grace``), the worker then stopped."""
        found = await self._run(func, args, on_event is not None, time_limit, on_event)
        if found is _STOPPED:
            raise TimeoutError(f"{func.__name__} ran past {time_limit:g}s")
        return found

    async def start(self) -> None:
        """Start the worker now rather than on the first solve (it takes an interpreter's
        start-up and the solver's imports)."""
        await self.call(_ready, (), 60.0)

    async def _run(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        stream: bool,
        time_limit: float,
        on_event: Callable[[Event], None] | None,
    ) -> Any:
        async with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self.close()
                self._start()
            assert self._requests is not None and self._events is not None
            self._requests.send((func, args, stream))
            return await self._collect(self._events, time_limit, on_event)

    async def _collect(
        self, conn: Connection, time_limit: float, on_event: Callable[[Event], None] | None
    ) -> Any:
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        fd = conn.fileno()
        loop.add_reader(fd, ready.set)
        t0 = time.perf_counter()
        hard = t0 + time_limit + self.grace
        self._best = self._last = None
        try:
            while True:
                left = hard - time.perf_counter()
                if left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ready.wait(), timeout=left)
                ready.clear()
                while conn.poll():
                    try:
                        kind, payload = conn.recv()
                    except EOFError:
                        self.close()
                        raise RuntimeError("the solver worker exited unexpectedly") from None
                    if kind == "done":
                        return payload
                    if kind == "error":
                        raise RuntimeError(f"the solver worker failed: {payload}")
                    if isinstance(payload, Event):
                        self._last = payload
                        if payload.v is not None:
                            self._best = payload
                    if on_event is not None:
                        on_event(payload)
        finally:
            loop.remove_reader(fd)
        log.warning(
            "solver worker ran past its time limit of %.1fs (+%.1fs grace); stopping it",
            time_limit,
            self.grace,
        )
        self.close()
        return _STOPPED


def _ready() -> bool:
    from . import _solve  # noqa: F401  (imports numpy, scipy and the solver modules)
    from ._highs import _highspy

    _highspy()
    return True


def _stopped(best: Event | None, last: Event | None, seconds: float) -> Outcome:
    """The outcome of a solve stopped from outside: the best answer it reported."""
    if best is None or best.v is None or best.n is None:
        bound = last.bound if last is not None else float("inf")
        return Outcome(
            "no_solution",
            None,
            None,
            float("-inf"),
            bound,
            float("inf"),
            "none",
            bound,
            seconds,
            [{"phase": "stopped", "seconds": seconds}],
        )
    bound = min(best.bound, last.bound) if last is not None else best.bound
    return Outcome(
        "time_limit",
        best.v,
        best.n,
        best.objective,
        bound,
        gap(best.objective, bound),
        best.phase,
        bound,
        seconds,
        [{"phase": "stopped", "seconds": seconds}],
    )


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
