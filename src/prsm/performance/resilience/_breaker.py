"""Circuit breakers: a pure state machine and a thin driver around it.

:func:`transition` is the whole policy: ``(state, event, now, settings) -> (state, allowed)``.
No clock, no I/O; the same code runs in the orchestrator, in the simulator and under the
property tests. :class:`CircuitBreaker` feeds it the clock's ``now``, raises
:class:`~prsm.performance.errors.CircuitBreakerOpenError` when it refuses, tells listeners of
state changes, and works on any coroutine (``await breaker.call(fn, ...)`` or as a
decorator).

::

    CLOSED --failure_threshold consecutive failures (or the failure rate)--> OPEN
    OPEN --ALLOW after reset_timeout--> HALF_OPEN (that call is the first probe)
    HALF_OPEN --success_threshold successes--> CLOSED
    HALF_OPEN --one failure--> OPEN (again: HALF_OPEN after probe_interval, not reset_timeout)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, NamedTuple, ParamSpec, TypeVar

from ..clock import Clock, SystemClock
from ..errors import CircuitBreakerOpenError, UpstreamError
from ._settings import BreakerSettings

P = ParamSpec("P")
R = TypeVar("R")


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


def client_errors_do_not_count(exc: BaseException) -> bool:
    """The default failure predicate: everything counts except an :class:`UpstreamError`
    with ``retryable=False`` (a client's 4xx: the node is fine)."""
    return not (isinstance(exc, UpstreamError) and not exc.retryable)


#: ``listener(breaker, old_state, new_state)``
StateListener = Callable[["CircuitBreaker", CircuitState, CircuitState], None]


class CircuitBreaker:
    """One circuit breaker (the source post's ``CircuitBreaker``), usually one per node.

    >>> breaker = CircuitBreaker(failure_threshold=5, reset_timeout=60)  # as the post writes it
    >>> named = CircuitBreaker("api")
    >>> @named
    ... async def fetch() -> int:
    ...     return 1

    ``failure_threshold`` and ``reset_timeout`` (keywords, as the post passes them) override
    those of ``settings``; a bad value raises :class:`~prsm.performance.errors.ConfigError`
    naming it.

    ``await breaker.call(fn, *args)`` runs ``fn`` if the breaker allows, else raises
    :class:`CircuitBreakerOpenError` (with the name and the seconds left). Exceptions of
    ``excluded`` types, or for which ``is_failure`` is false, pass through without counting
    (by default a non-retryable :class:`UpstreamError`, i.e. a client's 4xx). Listeners hear
    every state change; ``on_block(name, until)`` hears every change of
    :attr:`blocked_until` (the balancer uses it to stop picking the node).
    """

    def __init__(
        self,
        name: str = "breaker",
        settings: BreakerSettings | None = None,
        *,
        failure_threshold: int | None = None,
        reset_timeout: float | None = None,
        clock: Clock | None = None,
        excluded: tuple[type[BaseException], ...] = (),
        is_failure: Callable[[BaseException], bool] = client_errors_do_not_count,
        on_block: Callable[[str, float], None] | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(
                f"name: expected a string, got {name!r}; pass thresholds by keyword, e.g. "
                "CircuitBreaker(failure_threshold=5, reset_timeout=60)"
            )
        self.name = name
        base = settings or BreakerSettings()
        if failure_threshold is not None:
            base = dataclasses.replace(base, failure_threshold=failure_threshold)
        if reset_timeout is not None:
            base = dataclasses.replace(base, reset_timeout=reset_timeout)
        self.settings = base
        self.clock = clock or SystemClock()
        self.excluded = tuple(excluded)
        self.is_failure = is_failure
        self._st = CLOSED_STATE
        self._listeners: list[StateListener] = []
        self._on_block = on_block
        self._blocked_until = 0.0

    # -- state -----------------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """The stored state (OPEN stays OPEN until a call is attempted after the timeout)."""
        return self._st.state

    @property
    def snapshot(self) -> BreakerState:
        return self._st

    @property
    def blocked_until(self) -> float:
        return self._blocked_until

    def add_listener(self, listener: StateListener) -> None:
        """Call ``listener(breaker, old, new)`` after every state change."""
        self._listeners.append(listener)

    def _apply(self, event: Event, now: float) -> bool:
        old = self._st
        new, allowed = transition(old, event, now, self.settings)
        if new is not old:
            self._st = new
            if new.state is not old.state:
                for listener in self._listeners:
                    listener(self, old.state, new.state)
            until = blocked_until(new, self.settings)
            if until != self._blocked_until:
                self._blocked_until = until
                if self._on_block is not None:
                    self._on_block(self.name, until)
        return allowed

    # -- driving it ------------------------------------------------------------------------

    def try_acquire(self, now: float | None = None) -> bool:
        """Ask to start a call: ``True`` if allowed (then report its outcome exactly once)."""
        if self._st.state is CircuitState.CLOSED:  # what transition() says, without the calls
            return True
        return self._apply(Event.ALLOW, self.clock.monotonic() if now is None else now)

    def acquire(self, now: float | None = None) -> None:
        """Like :meth:`try_acquire`, but raise :class:`CircuitBreakerOpenError` if refused."""
        t = self.clock.monotonic() if now is None else now
        if not self._apply(Event.ALLOW, t):
            raise self.open_error(t)

    def open_error(self, now: float) -> CircuitBreakerOpenError:
        return CircuitBreakerOpenError(
            self.name, retry_after(self._st, now, self.settings), state=self._st.state.value
        )

    def record_success(self, now: float | None = None) -> None:
        st = self._st
        if (
            st.state is CircuitState.CLOSED
            and not st.failures
            and self.settings.failure_rate_threshold is None
        ):
            return  # nothing changes (as transition() says), and this is every healthy call
        self._apply(Event.SUCCESS, self.clock.monotonic() if now is None else now)

    def record_failure(self, now: float | None = None) -> None:
        self._apply(Event.FAILURE, self.clock.monotonic() if now is None else now)

    def record_ignored(self, now: float | None = None) -> None:
        """The call ended in a way that says nothing about the node (cancelled, a 4xx)."""
        self._apply(Event.IGNORE, self.clock.monotonic() if now is None else now)

    def counts(self, exc: BaseException) -> bool:
        """Whether ``exc`` counts as a failure of the protected thing."""
        if self.excluded and isinstance(exc, self.excluded):
            return False
        return self.is_failure(exc)

    def record_exception(self, exc: BaseException, now: float | None = None) -> None:
        """Record ``exc`` as a failure, or as ignored if it does not count."""
        if self.counts(exc):
            self.record_failure(now)
        else:
            self.record_ignored(now)

    async def call(self, fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``await fn(*args, **kwargs)`` through the breaker (the post's ``call``)."""
        self.acquire()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            if isinstance(exc, Exception):
                self.record_exception(exc)
            else:  # cancelled or interrupted: says nothing about the node
                self.record_ignored()
            raise
        self.record_success()
        return result

    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        """Use the breaker as a decorator on a coroutine function."""

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return await self.call(fn, *args, **kwargs)

        return wrapper

    def reset(self) -> None:
        """Force it CLOSED (an operator's action)."""
        old = self._st.state
        self._st = CLOSED_STATE
        if old is not CircuitState.CLOSED:
            for listener in self._listeners:
                listener(self, old, CircuitState.CLOSED)
        if self._blocked_until != 0.0:
            self._blocked_until = 0.0
            if self._on_block is not None:
                self._on_block(self.name, 0.0)

    def describe(self, now: float | None = None) -> dict[str, Any]:
        """State, counts and seconds left, for admin pages."""
        t = self.clock.monotonic() if now is None else now
        st = self._st
        left = retry_after(st, t, self.settings)
        return {
            "state": st.state.value,
            "failures": st.failures,
            "probes": st.probes,
            "retry_after": None if math.isinf(left) else left,
        }


class BreakerSet:
    """One :class:`CircuitBreaker` per node, made on first use, all with the same settings.

    ``listener(breaker, old, new)`` hears every breaker's state changes and ``on_block``
    every change of a breaker's :attr:`~CircuitBreaker.blocked_until`.
    """

    def __init__(
        self,
        settings: BreakerSettings | None = None,
        *,
        clock: Clock | None = None,
        excluded: tuple[type[BaseException], ...] = (),
        is_failure: Callable[[BaseException], bool] = client_errors_do_not_count,
        on_block: Callable[[str, float], None] | None = None,
    ) -> None:
        self.settings = settings or BreakerSettings()
        self.clock = clock or SystemClock()
        self._excluded = excluded
        self._is_failure = is_failure
        self._on_block = on_block
        self._listeners: list[StateListener] = []
        self._breakers: dict[str, CircuitBreaker] = {}

    def add_listener(self, listener: StateListener) -> None:
        self._listeners.append(listener)
        for b in self._breakers.values():
            b.add_listener(listener)

    def get(self, node_id: str) -> CircuitBreaker:
        """The node's breaker (created CLOSED on first use)."""
        b = self._breakers.get(node_id)
        if b is None:
            b = CircuitBreaker(
                node_id,
                self.settings,
                clock=self.clock,
                excluded=self._excluded,
                is_failure=self._is_failure,
                on_block=self._on_block,
            )
            for listener in self._listeners:
                b.add_listener(listener)
            self._breakers[node_id] = b
        return b

    def remove(self, node_id: str) -> None:
        self._breakers.pop(node_id, None)

    def states(self) -> dict[str, CircuitState]:
        """Each node's breaker state."""
        return {n: b.state for n, b in self._breakers.items()}

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._breakers

    def __len__(self) -> int:
        return len(self._breakers)
