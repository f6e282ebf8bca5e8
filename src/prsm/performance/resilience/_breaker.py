"""Circuit breakers: a thin driver around the pure state machine of :mod:`._machine`.

:func:`~._machine.transition` is the whole policy. :class:`CircuitBreaker` feeds it the
clock's ``now``, raises :class:`~prsm.performance.errors.CircuitBreakerOpenError` when it
refuses, tells listeners of state changes, and works on any coroutine (``await
breaker.call(fn, ...)`` or as a decorator); :class:`BreakerSet` keeps one per node.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from ..clock import Clock, SystemClock
from ..errors import CircuitBreakerOpenError, UpstreamError
from ._machine import (
    CLOSED_STATE,
    BreakerState,
    CircuitState,
    Event,
    blocked_until,
    retry_after,
    transition,
)
from ._settings import BreakerSettings

P = ParamSpec("P")
R = TypeVar("R")

#: the package's names from this module (the states are defined in :mod:`._machine`)
__all__ = ["BreakerSet", "BreakerState", "CircuitBreaker", "CircuitState"]


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
