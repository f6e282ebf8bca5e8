"""Circuit breakers: the pure state machine, the driver, listeners, decorator, properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from prsm.performance.clock import ManualClock
from prsm.performance.errors import CircuitBreakerOpenError, ConfigError, UpstreamError
from prsm.performance.resilience import BreakerSet, BreakerSettings, CircuitBreaker, CircuitState
from prsm.performance.resilience._machine import (
    CLOSED_STATE,
    BreakerState,
    Event,
    blocked_until,
    open_interval,
    retry_after,
    transition,
)

S = BreakerSettings()


def test_defaults_are_the_posts() -> None:
    assert (S.failure_threshold, S.reset_timeout, S.half_open_max_calls) == (5, 60.0, 1)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"reset_timeout": 0}, "reset_timeout"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold"),
        ({"window": -1.0}, "window"),
    ],
)
def test_bad_settings_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        BreakerSettings(**changes)  # type: ignore[arg-type]
    assert info.value.field == field


def _run(events: list[tuple[Event, float]], s: BreakerSettings = S) -> BreakerState:
    state = CLOSED_STATE
    for event, now in events:
        state, _ = transition(state, event, now, s)
    return state


def test_opens_after_threshold_consecutive_failures_only() -> None:
    four = [(Event.FAILURE, 0.0)] * 4
    assert _run([*four, (Event.SUCCESS, 0.0), *four]).state is CircuitState.CLOSED
    opened = _run([*four, (Event.FAILURE, 3.0)])
    assert opened.state is CircuitState.OPEN and opened.opened_at == 3.0


def test_open_refuses_until_reset_timeout_then_one_probe() -> None:
    st0 = _run([(Event.FAILURE, 0.0)] * 5)
    st1, allowed = transition(st0, Event.ALLOW, 59.9, S)
    assert not allowed and st1 is st0
    assert retry_after(st0, 59.0, S) == pytest.approx(1.0)
    assert blocked_until(st0, S) == 60.0
    st2, allowed = transition(st0, Event.ALLOW, 60.0, S)
    assert allowed and st2.state is CircuitState.HALF_OPEN and st2.probes == 1
    st3, allowed = transition(st2, Event.ALLOW, 60.0, S)
    assert not allowed  # the probe cap
    assert retry_after(st3, 61.0, S) == math.inf
    closed, _ = transition(st3, Event.SUCCESS, 61.0, S)
    assert closed == CLOSED_STATE
    reopened, _ = transition(st3, Event.FAILURE, 61.0, S)
    assert reopened.state is CircuitState.OPEN and reopened.opened_at == 61.0


def test_a_failed_probe_reopens_for_the_probe_interval_only() -> None:
    """The first OPEN lasts reset_timeout; after a failed probe the node is probed again
    every probe_interval, so a node that comes back is found by the next probe."""
    s = BreakerSettings(failure_threshold=1, reset_timeout=5.0, probe_interval=0.5)
    opened, _ = transition(CLOSED_STATE, Event.FAILURE, 0.0, s)
    assert blocked_until(opened, s) == 5.0 and not transition(opened, Event.ALLOW, 4.9, s)[1]
    half, allowed = transition(opened, Event.ALLOW, 5.0, s)
    assert allowed and half.state is CircuitState.HALF_OPEN
    reopened, _ = transition(half, Event.FAILURE, 5.1, s)
    assert reopened.reopened and blocked_until(reopened, s) == pytest.approx(5.6)
    assert retry_after(reopened, 5.3, s) == pytest.approx(0.3)
    assert not transition(reopened, Event.ALLOW, 5.59, s)[1]
    again, allowed = transition(reopened, Event.ALLOW, 5.6, s)
    assert allowed and again.state is CircuitState.HALF_OPEN
    closed, _ = transition(again, Event.SUCCESS, 5.61, s)
    assert closed == CLOSED_STATE  # and the next opening lasts reset_timeout again
    assert blocked_until(transition(closed, Event.FAILURE, 9.0, s)[0], s) == 14.0
    unset = BreakerSettings(failure_threshold=1, reset_timeout=5.0, probe_interval=None)
    assert open_interval(reopened, unset) == 5.0


@pytest.mark.parametrize("bad", [0, -1.0, "1", True])
def test_probe_interval_is_checked(bad: object) -> None:
    with pytest.raises(ConfigError, match="probe_interval"):
        BreakerSettings(probe_interval=bad)  # type: ignore[arg-type]


def test_ignored_outcomes_free_the_probe_without_counting() -> None:
    half, _ = transition(_run([(Event.FAILURE, 0.0)] * 5), Event.ALLOW, 60.0, S)
    freed, _ = transition(half, Event.IGNORE, 60.0, S)
    assert freed.state is CircuitState.HALF_OPEN and freed.probes == 0
    assert _run([(Event.FAILURE, 0.0)] * 4 + [(Event.IGNORE, 0.0)]).failures == 4


def test_success_threshold_and_probe_limit() -> None:
    s = BreakerSettings(half_open_max_calls=2, success_threshold=2)
    st0 = _run([(Event.FAILURE, 0.0)] * 5, s)
    st1, a1 = transition(st0, Event.ALLOW, 60.0, s)
    st2, a2 = transition(st1, Event.ALLOW, 60.0, s)
    st3, a3 = transition(st2, Event.ALLOW, 60.0, s)
    assert (a1, a2, a3) == (True, True, False)
    st4, _ = transition(st3, Event.SUCCESS, 61.0, s)
    assert st4.state is CircuitState.HALF_OPEN
    st5, _ = transition(st4, Event.SUCCESS, 61.0, s)
    assert st5.state is CircuitState.CLOSED


def test_failure_rate_window() -> None:
    s = BreakerSettings(
        failure_threshold=100, failure_rate_threshold=0.5, window=10.0, min_calls_in_window=4
    )
    # alternate: never 100 in a row, but half fail
    events = [(Event.SUCCESS if i % 2 else Event.FAILURE, i * 0.1) for i in range(3)]
    assert _run(events, s).state is CircuitState.CLOSED  # fewer calls than the minimum
    events.append((Event.FAILURE, 0.4))
    assert _run(events, s).state is CircuitState.OPEN
    # old outcomes leave the window
    old = [(Event.FAILURE, 0.0)] * 3 + [(Event.SUCCESS, 20.0)] * 3 + [(Event.FAILURE, 20.0)]
    assert _run(old, s).state is CircuitState.CLOSED


async def test_driver_raises_open_error_with_node_and_time_left() -> None:
    clock = ManualClock()
    b = CircuitBreaker(
        "node-a", BreakerSettings(failure_threshold=2, reset_timeout=10), clock=clock
    )
    changes: list[tuple[str, str]] = []
    b.add_listener(lambda br, old, new: changes.append((old.value, new.value)))

    async def boom() -> None:
        raise UpstreamError("node-a", "down")

    for _ in range(2):
        with pytest.raises(UpstreamError):
            await b.call(boom)
    clock.advance(4)
    with pytest.raises(CircuitBreakerOpenError) as info:
        await b.call(boom)
    assert info.value.node_id == "node-a"
    assert info.value.retry_after == pytest.approx(6.0)
    assert "node-a" in str(info.value)
    clock.advance(6)

    async def fine() -> int:
        return 7

    assert await b.call(fine) == 7
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


async def test_decorator_and_excluded_exceptions() -> None:
    b = CircuitBreaker("x", BreakerSettings(failure_threshold=1), clock=ManualClock(),
                       excluded=(KeyError,))  # fmt: skip

    @b
    async def lookup(key: str) -> str:
        raise KeyError(key)

    @b
    async def client_error() -> None:
        raise UpstreamError("x", "bad request", status=400, retryable=False)

    for _ in range(3):
        with pytest.raises(KeyError):
            await lookup("k")
        with pytest.raises(UpstreamError):
            await client_error()
    assert b.state is CircuitState.CLOSED
    assert lookup.__name__ == "lookup"


def test_breaker_set_and_block_callback() -> None:
    clock = ManualClock()
    blocks: list[tuple[str, float]] = []
    bs = BreakerSet(BreakerSettings(failure_threshold=1, reset_timeout=5), clock=clock,
                    on_block=lambda n, u: blocks.append((n, u)))  # fmt: skip
    b = bs.get("a")
    assert bs.get("a") is b
    b.try_acquire()
    b.record_failure()
    assert bs.states() == {"a": CircuitState.OPEN}
    clock.advance(5)
    assert b.try_acquire()
    b.record_success()
    assert blocks == [("a", 5.0), ("a", math.inf), ("a", 0.0)]
    bs.remove("a")
    assert "a" not in bs


# -- property: transitions follow the state machine --------------------------------------


class Reference:
    """The state machine written out plainly, as the docs describe it."""

    def __init__(self, s: BreakerSettings) -> None:
        self.s = s
        self.state = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self.probes = 0
        self.successes = 0
        self.interval = s.reset_timeout  # of the current OPEN

    def step(self, event: Event, now: float) -> bool:
        s = self.s
        if event is Event.ALLOW:
            if self.state == "closed":
                return True
            if self.state == "open":
                if now - self.opened_at >= self.interval:
                    self.state, self.probes, self.successes = "half_open", 1, 0
                    return True
                return False
            if self.probes < s.half_open_max_calls:
                self.probes += 1
                return True
            return False
        if self.state == "closed":
            if event is Event.SUCCESS:
                self.failures = 0
            elif event is Event.FAILURE:
                self.failures += 1
                if self.failures >= s.failure_threshold:
                    self.state, self.opened_at, self.failures = "open", now, 0
                    self.interval = s.reset_timeout
        elif self.state == "half_open":
            self.probes = max(0, self.probes - 1)
            if event is Event.FAILURE:
                self.state, self.opened_at, self.probes, self.successes = "open", now, 0, 0
                self.interval = s.probe_interval or s.reset_timeout  # a failed probe
            elif event is Event.SUCCESS:
                self.successes += 1
                if self.successes >= s.success_threshold:
                    self.state, self.failures, self.probes, self.successes = "closed", 0, 0, 0
        return True


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 4),
    st.floats(0.5, 20),
    st.integers(1, 3),
    st.integers(1, 2),
    st.one_of(st.none(), st.floats(0.1, 20)),
    st.lists(st.tuples(st.sampled_from(list(Event)), st.floats(0, 10)), max_size=60),
)
def test_transitions_follow_the_state_machine(  # noqa: PLR0917 (hypothesis passes them so)
    threshold: int,
    reset: float,
    probes: int,
    successes: int,
    interval: float | None,
    steps: list[tuple[Event, float]],
) -> None:
    s = BreakerSettings(failure_threshold=threshold, reset_timeout=reset,
                        half_open_max_calls=probes, success_threshold=successes,
                        probe_interval=interval)  # fmt: skip
    ref = Reference(s)
    state = CLOSED_STATE
    now = 0.0
    for event, dt in steps:
        now += dt
        old = state.state
        state, allowed = transition(state, event, now, s)
        assert allowed == ref.step(event, now)
        assert state.state.value == ref.state
        assert state.probes == ref.probes
        assert 0 <= state.probes <= s.half_open_max_calls
        if old is CircuitState.CLOSED and state.state is CircuitState.OPEN:
            assert event is Event.FAILURE
        if old is CircuitState.OPEN and state.state is not CircuitState.OPEN:
            assert event is Event.ALLOW and state.state is CircuitState.HALF_OPEN
        if state.state is CircuitState.OPEN:
            left = open_interval(state, s)
            assert left == (ref.interval)
            assert not transition(state, Event.ALLOW, state.opened_at + left * 0.999, s)[1]


async def test_the_source_posts_breaker_works_as_written() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=5, reset_timeout=60, clock=clock)
    assert breaker.settings.failure_threshold == 5 and breaker.settings.reset_timeout == 60.0

    async def func(x: int, *, y: int) -> int:
        return x + y

    assert await breaker.call(func, 1, y=2) == 3

    async def down() -> None:
        raise ConnectionError("refused")

    for _ in range(5):
        with pytest.raises(ConnectionError):
            await breaker.call(down)
    with pytest.raises(CircuitBreakerOpenError) as info:
        await breaker.call(func, 1, y=2)
    assert info.value.retry_after == pytest.approx(60.0)
    clock.advance(60)
    assert await breaker.call(func, 1, y=2) == 3  # the half-open probe closes it
    assert breaker.state is CircuitState.CLOSED
    tight = CircuitBreaker("api", BreakerSettings(success_threshold=2), failure_threshold=1)
    assert tight.settings.failure_threshold == 1 and tight.settings.success_threshold == 2
    with pytest.raises(ConfigError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(TypeError, match="keyword"):
        CircuitBreaker(5, 60)  # type: ignore[arg-type]
