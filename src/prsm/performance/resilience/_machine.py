"""The circuit breaker's state machine: pure, no clock and no I/O.

:func:`transition` is the whole policy: ``(state, event, now, settings) -> (state, allowed)``;
:func:`retry_after` and :func:`blocked_until` read a state. The same code runs in the
orchestrator (through :class:`~._breaker.CircuitBreaker`), in the simulator and under the
property tests.

::

    CLOSED --failure_threshold consecutive failures (or the failure rate)--> OPEN
    OPEN --ALLOW after reset_timeout--> HALF_OPEN (that call is the first probe)
    HALF_OPEN --success_threshold successes--> CLOSED
    HALF_OPEN --one failure--> OPEN (again: HALF_OPEN after probe_interval, not reset_timeout)
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import NamedTuple

from ._settings import BreakerSettings


class CircuitState(StrEnum):
    """Where a breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Event(StrEnum):
    """What a breaker is told: a call wants to start (``ALLOW``), or a call it let through
    ended in ``SUCCESS``, ``FAILURE`` or an outcome that does not count (``IGNORE``)."""

    ALLOW = "allow"
    SUCCESS = "success"
    FAILURE = "failure"
    IGNORE = "ignore"


#: A bucket of the failure-rate window: (bucket index, successes, failures).
Bucket = tuple[int, int, int]


class BreakerState(NamedTuple):
    """Everything a breaker remembers. ``failures`` are consecutive failures while CLOSED;
    ``probes`` the half-open calls in flight; ``successes`` the half-open successes so far;
    ``window`` the failure-rate buckets (empty unless a failure rate is configured);
    ``reopened`` whether this OPEN followed a failed probe (it then lasts the settings'
    ``probe_interval``, else ``reset_timeout``)."""

    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probes: int = 0
    successes: int = 0
    window: tuple[Bucket, ...] = ()
    reopened: bool = False


def open_interval(st: BreakerState, settings: BreakerSettings) -> float:
    """How long the OPEN state ``st`` refuses calls."""
    if st.reopened and settings.probe_interval is not None:
        return settings.probe_interval
    return settings.reset_timeout


CLOSED_STATE = BreakerState()


def _record(
    window: tuple[Bucket, ...], ok: bool, now: float, settings: BreakerSettings
) -> tuple[Bucket, ...]:
    width = settings.window / settings.window_buckets
    index = math.floor(now / width)
    oldest = index - settings.window_buckets + 1
    kept = [b for b in window if b[0] >= oldest]
    if kept and kept[-1][0] == index:
        _, s, f = kept[-1]
        kept[-1] = (index, s + ok, f + (not ok))
    else:
        kept.append((index, int(ok), int(not ok)))
    return tuple(kept)


def failure_rate(window: tuple[Bucket, ...]) -> tuple[int, float]:
    """(calls, failure fraction) over the window's buckets."""
    calls = sum(s + f for _, s, f in window)
    fails = sum(f for _, _, f in window)
    return calls, (fails / calls if calls else 0.0)


def _trips(st: BreakerState, settings: BreakerSettings) -> bool:
    if st.failures >= settings.failure_threshold:
        return True
    rate_limit = settings.failure_rate_threshold
    if rate_limit is None:
        return False
    calls, rate = failure_rate(st.window)
    return calls >= settings.min_calls_in_window and rate >= rate_limit


def transition(
    st: BreakerState, event: Event, now: float, settings: BreakerSettings
) -> tuple[BreakerState, bool]:
    """The state after ``event`` at ``now``, and whether an ``ALLOW`` is granted (``True``
    for outcome events). Returns ``st`` itself when nothing changes."""
    state = st.state
    if event is Event.ALLOW:
        if state is CircuitState.CLOSED:
            return st, True
        if state is CircuitState.OPEN:
            if now - st.opened_at >= open_interval(st, settings):
                return BreakerState(CircuitState.HALF_OPEN, 0, st.opened_at, 1, 0, ()), True
            return st, False
        if st.probes < settings.half_open_max_calls:
            return st._replace(probes=st.probes + 1), True
        return st, False
    if state is CircuitState.CLOSED:
        if event is Event.IGNORE:
            return st, True
        ok = event is Event.SUCCESS
        if ok and st.failures == 0 and settings.failure_rate_threshold is None:
            return st, True
        window = _record(st.window, ok, now, settings) if settings.failure_rate_threshold else ()
        new = BreakerState(CircuitState.CLOSED, 0 if ok else st.failures + 1, 0.0, 0, 0, window)
        if not ok and _trips(new, settings):
            return BreakerState(CircuitState.OPEN, 0, now, 0, 0, ()), True
        return new, True
    if state is CircuitState.OPEN:
        # Outcomes of calls let through before it opened change nothing.
        return st, True
    probes = st.probes - 1 if st.probes > 0 else 0
    if event is Event.FAILURE:
        return BreakerState(CircuitState.OPEN, 0, now, 0, 0, (), True), True
    if event is Event.IGNORE:
        return st._replace(probes=probes), True
    successes = st.successes + 1
    if successes >= settings.success_threshold:
        return CLOSED_STATE, True
    return st._replace(probes=probes, successes=successes), True


def retry_after(st: BreakerState, now: float, settings: BreakerSettings) -> float:
    """Seconds until the breaker lets a call through again (0 if it would now; ``inf`` while
    half-open with every probe slot taken)."""
    if st.state is CircuitState.OPEN:
        return max(0.0, st.opened_at + open_interval(st, settings) - now)
    if st.state is CircuitState.HALF_OPEN and st.probes >= settings.half_open_max_calls:
        return math.inf
    return 0.0


def blocked_until(st: BreakerState, settings: BreakerSettings) -> float:
    """The monotonic time until which the breaker refuses calls: 0 when it lets them
    through, ``inf`` while half-open with every probe slot taken."""
    if st.state is CircuitState.OPEN:
        return st.opened_at + open_interval(st, settings)
    if st.state is CircuitState.HALF_OPEN and st.probes >= settings.half_open_max_calls:
        return math.inf
    return 0.0
