"""``LoadTracker``: the live load signals a scaling policy reads, from per-request hooks.

The request path calls :meth:`arrived` when a request comes in, :meth:`started` when it
leaves the queue and :meth:`finished` when it ends (each O(1), no allocation). The tracker
keeps the arrivals per ``step`` (a ring of ``history`` seconds), the time-averages of the
requests in the system and in service since the last :meth:`take_window`, and the mean of
the last ``service_window`` service times and, for requests that name their user, the
users' sessions (:class:`~prsm.performance.scaling.SessionTracker`) — what
:class:`~prsm.performance.scaling.ScalingLoop` turns into a
:class:`~prsm.performance.scaling.ScalingContext`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from ..clock import Clock, SystemClock
from ._sessions import SessionSnapshot, SessionTracker
from ._types import LoadSeries, check_positive, check_whole


@dataclass(frozen=True, slots=True)
class LoadWindow:
    """Since the previous window: its length, arrivals, mean requests in the system and in
    service, mean queueing delay and the share of requests that failed."""

    interval: float
    arrivals: int
    mean_ongoing: float
    mean_busy: float
    mean_wait: float
    error_rate: float | None


class LoadTracker:
    """See the module docstring."""

    def __init__(
        self,
        *,
        step: float = 60.0,
        history: float = 21 * 86400.0,
        service_window: int = 200,
        clock: Clock | None = None,
        sessions: SessionTracker | None = None,
    ) -> None:
        check_positive("step", step)
        check_positive("history", history)
        check_whole("service_window", service_window, 1)
        self.step = step
        self.clock = clock or SystemClock()
        self._size = max(2, int(history // step))
        self._counts = np.zeros(self._size)
        now = self.clock.time()
        self._origin = np.floor(now / step) * step  # wall-clock start of step 0
        self._current = 0  # index (from the origin) of the step now filling
        self.in_flight = 0
        self.queued = 0
        self._services: deque[float] = deque(maxlen=service_window)
        self._service_sum = 0.0
        self._last = self.clock.monotonic()
        self._window_start = self._last
        self._area_ongoing = 0.0
        self._area_busy = 0.0
        self._arrivals = 0
        self._wait_sum = 0.0
        self._waits = 0
        self._finished = 0
        self._errors = 0
        self.sessions = sessions if sessions is not None else SessionTracker()

    # -- hooks -----------------------------------------------------------------------------
    def _advance(self) -> None:
        now = self.clock.monotonic()
        dt = now - self._last
        if dt > 0:
            self._area_ongoing += dt * (self.in_flight + self.queued)
            self._area_busy += dt * self.in_flight
            self._last = now

    def _roll(self) -> int:
        idx = int((self.clock.time() - self._origin) // self.step)
        if idx > self._current:
            gap = min(idx - self._current, self._size)
            for k in range(1, gap + 1):
                self._counts[(self._current + k) % self._size] = 0.0
            self._current = idx
        return idx

    def arrived(self, user: Hashable | None = None) -> None:
        """A request came in (it waits until :meth:`started`); ``user`` (the request's user
        or API key, where known) feeds the sessions."""
        self._advance()
        if user is not None:
            self.sessions.arrived(user, self.clock.time())
        self._counts[self._roll() % self._size] += 1.0
        self.queued += 1
        self._arrivals += 1

    def started(self, waited: float = 0.0, node: str | None = None) -> None:
        """A request left the queue after ``waited`` seconds and is being served (by
        ``node``, where known: this tracker counts the load of all the replicas together)."""
        del node
        self._advance()
        self.queued = max(0, self.queued - 1)
        self.in_flight += 1
        self._wait_sum += waited
        self._waits += 1

    def finished(
        self, service_time: float, *, error: bool = False, node: str | None = None
    ) -> None:
        """A request in service ended after ``service_time`` seconds (``error``: it failed;
        ``node``: as for :meth:`started`)."""
        del node
        self._advance()
        self.in_flight = max(0, self.in_flight - 1)
        self._finished += 1
        if error:
            self._errors += 1
            return
        if len(self._services) == self._services.maxlen:
            self._service_sum -= self._services[0]
        self._services.append(service_time)
        self._service_sum += service_time

    def resumed(self, count: int) -> None:
        """``count`` requests already in service that this tracker did not see start (those a
        gateway pod reports holding when it first reports to a new leader): in flight from
        now on, with no arrival and no wait sample (their :meth:`finished` follows)."""
        self._advance()
        self.in_flight += count

    # -- readings --------------------------------------------------------------------------
    @property
    def service_time(self) -> float | None:
        """Mean service time of the last finished requests (``None`` before any)."""
        return self._service_sum / len(self._services) if self._services else None

    def load(self) -> LoadSeries:
        """Arrivals per step, the completed steps of the kept history, oldest first."""
        current = self._roll()
        first = max(0, current - self._size + 1)
        idx = np.arange(first, current) % self._size
        return LoadSeries(self._origin + first * self.step, self.step, self._counts[idx].copy())

    def session_snapshot(self) -> SessionSnapshot | None:
        """The users' open sessions now (``None`` while no request has named its user)."""
        sessions = self.sessions
        now = self.clock.time()
        snap = sessions.snapshot(now)
        return snap if snap.settled or snap.open else None

    def end_term(self) -> None:
        """This pod stopped leading the scaling (a leader election's term ended): the window
        is closed (its requests are the ended term's) and nothing is in flight or queued any
        more (those requests go on at the next leader, which counts them as they start and
        end). Kept: the arrivals per step, the service times and the users' sessions, the
        load as observed."""
        self.take_window()
        self.in_flight = self.queued = 0

    def take_window(self) -> LoadWindow:
        """The window since the previous call (and start a new one)."""
        self._advance()
        span = self._last - self._window_start
        ongoing = self.in_flight + self.queued
        out = LoadWindow(
            interval=span,
            arrivals=self._arrivals,
            mean_ongoing=self._area_ongoing / span if span > 0 else float(ongoing),
            mean_busy=self._area_busy / span if span > 0 else float(self.in_flight),
            mean_wait=self._wait_sum / self._waits if self._waits else 0.0,
            error_rate=self._errors / self._finished if self._finished else None,
        )
        self._window_start = self._last
        self._area_ongoing = self._area_busy = self._wait_sum = 0.0
        self._arrivals = self._waits = self._finished = self._errors = 0
        return out
