"""A solver worker process: solves run there, so the event loop never blocks on them.

The worker is a :class:`~prsm.performance._helper_process.HelperProcess` (a fresh
interpreter, started on first use and reused; requests and answers pickled over two pipes).
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
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from .._helper_process import HelperProcess
from ._problem import Problem, gap
from ._solve import Event, Outcome, SolveOptions, solve

log = logging.getLogger(__name__)
_STOPPED = object()


class SolverWorker:
    """One solver process, reused across solves; :meth:`close` (or garbage collection)
    stops it."""

    def __init__(self, *, grace: float = 2.0) -> None:
        self.grace = grace
        self._helper = HelperProcess("solver")
        self._lock = asyncio.Lock()
        self._best: Event | None = None  # of the running solve, for a stopped one
        self._last: Event | None = None

    @property
    def pid(self) -> int | None:
        return self._helper.pid

    def close(self) -> None:
        """Stop the worker process (it is started again on the next solve)."""
        self._helper.close()

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
            self._helper.send(func, args, stream)
            return await self._collect(self._helper.events, time_limit, on_event)

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
                    kind, payload = self._helper.receive()
                    if kind != "event":
                        return self._helper.answer(kind, payload)
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
