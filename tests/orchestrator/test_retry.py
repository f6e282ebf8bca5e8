"""The retry policy (pure: a snapshot and ``now`` in, TryNode / Sleep / Stop out) and the
drivers carrying it out on a manual clock."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Collection
from typing import Any

import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.config import load_config
from prsm.performance.errors import (
    CircuitBreakerOpenError,
    ConfigError,
    DeadlineExceededError,
    NoCapableNodesError,
    UpstreamError,
    UpstreamUnavailableError,
)
from prsm.performance.orchestrator import (
    OrchestratorSettings,
    RetryPolicy,
    RetryState,
    Sleep,
    Stop,
    TryNode,
)
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.routing._node import NodeSpec
from prsm.performance.types import AIRequest
from prsm.performance.upstreams._base import CallableUpstream

from .conftest import SleepRecordingClock

NODES = {n: NodeSpec(n, models={"m"}) for n in ("a", "b", "c")}


def picker(*available: str) -> Any:
    """A balancer stand-in: the first of ``available`` not excluded, in order."""

    def pick(exclude: Collection[str]) -> NodeSpec:
        for n in available:
            if n not in exclude:
                return NODES[n]
        raise NoCapableNodesError({"model:m"}, {}, reason="every capable node excluded")

    return pick


def policy(**kw: Any) -> RetryPolicy:
    kw.setdefault("jitter", 0.0)
    return RetryPolicy(**kw)


DOWN = UpstreamUnavailableError("a", "answered 503", status=503)


def state(**kw: Any) -> RetryState:
    kw.setdefault("deadline", 60.0)
    kw.setdefault("budget", 60.0)
    return RetryState(**kw)


def test_first_decision_tries_the_balancers_pick() -> None:
    decision, after = policy().decide(state(), 0.0, picker("a", "b"))
    assert decision == TryNode(NODES["a"], "first")
    assert after.attempts == 1 and after.tried == ("a",)


def test_a_failure_moves_to_a_node_not_tried_yet_at_once() -> None:
    s = state(attempts=1, tried=("a",), last_error=DOWN)
    decision, after = policy().decide(s, 1.0, picker("a", "b"))
    assert decision == TryNode(NODES["b"], "server_error")
    assert after.attempts == 2 and after.tried == ("a", "b") and after.sleeps == 0


def test_back_off_sequence_when_every_node_was_tried() -> None:
    p = policy(max_attempts=100, backoff=0.1, multiplier=2.0, backoff_max=1.0)
    s = state(attempts=1, tried=("a",), last_error=DOWN)
    waits = []
    for _ in range(6):
        decision, s = p.decide(s, 0.0, picker("a"))
        assert isinstance(decision, Sleep) and decision.reason == "server_error"
        assert s.tried == ()  # a new round: every node may be tried again
        waits.append(decision.seconds)
        decision, s = p.decide(s, 0.0, picker("a"))
        assert decision == TryNode(NODES["a"], "server_error")
        s = s._replace(last_error=DOWN)
    assert waits == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])  # doubled, capped


def test_seeded_jitter_is_reproducible_and_within_its_fraction() -> None:
    def draws(seed: int) -> list[float]:
        p = RetryPolicy(backoff=1.0, multiplier=1.0, backoff_max=1.0, jitter=0.5,
                        rng=random.Random(seed))  # fmt: skip
        return [p.backoff(0) for _ in range(50)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    assert all(0.5 <= d <= 1.0 for d in draws(7))
    full = RetryPolicy(backoff=1.0, backoff_max=1.0, jitter=1.0, rng=random.Random(1))
    assert min(full.backoff(0) for _ in range(200)) < 0.1  # full jitter reaches near 0


def test_retry_after_is_honoured_within_the_deadline() -> None:
    asked = UpstreamUnavailableError("a", "answered 429", status=429, retry_after=2.5)
    s = state(attempts=1, tried=("a",), last_error=asked)
    decision, _ = policy(backoff=0.1).decide(s, 1.0, picker("a"))
    assert decision == Sleep(2.5, "rate_limited")  # longer than the back-off: it wins
    # another node need not wait for this node's Retry-After
    decision, _ = policy().decide(s, 1.0, picker("a", "b"))
    assert decision == TryNode(NODES["b"], "rate_limited")


def test_retry_after_past_the_deadline_stops_at_once_with_the_nodes_error() -> None:
    asked = UpstreamUnavailableError("a", "answered 429", status=429, retry_after=30.0)
    s = state(deadline=10.0, budget=10.0, attempts=1, tried=("a",), last_error=asked)
    decision, _ = policy().decide(s, 1.0, picker("a"))
    assert decision == Stop(asked, "retry_after_beyond_deadline")
    open_err = CircuitBreakerOpenError("a", 60.0)  # a breaker's time left counts the same
    decision, _ = policy().decide(s._replace(last_error=open_err), 1.0, picker("a"))
    assert decision == Stop(open_err, "retry_after_beyond_deadline")


def test_a_back_off_past_the_deadline_stops() -> None:
    s = state(deadline=1.05, budget=1.0, attempts=1, tried=("a",), last_error=DOWN)
    decision, _ = policy(backoff=0.1).decide(s, 1.0, picker("a"))
    assert decision == Stop(DOWN, "deadline")


def test_stop_reasons() -> None:
    p = policy(max_attempts=2)
    client = UpstreamError("a", "answered 400", status=400, retryable=False)
    s = state(attempts=1, tried=("a",), last_error=client)
    assert p.decide(s, 0.0, picker("a", "b"))[0] == Stop(client, "not_retryable")
    s = state(attempts=2, tried=("a", "b"), last_error=DOWN)
    assert p.decide(s, 0.0, picker("a", "b", "c"))[0] == Stop(DOWN, "attempts")
    s = state(deadline=5.0, budget=5.0, attempts=1, tried=("a",), last_error=DOWN)
    decision, _ = p.decide(s, 5.0, picker("a", "b"))
    assert isinstance(decision, Stop) and decision.reason == "deadline"
    assert isinstance(decision.error, DeadlineExceededError)
    assert decision.error.attempts == 1 and decision.error.last_error is DOWN
    # nothing capable at all: the routing error itself, or after a failure that failure
    decision, _ = p.decide(state(), 0.0, picker())
    assert isinstance(decision, Stop) and decision.reason == "no_node"
    assert isinstance(decision.error, NoCapableNodesError)
    after_sleep = state(attempts=1, tried=(), sleeps=1, last_error=DOWN)
    assert p.decide(after_sleep, 0.0, picker())[0] == Stop(DOWN, "no_node")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("retry_backoff", -0.1),
        ("retry_backoff_multiplier", 0.5),
        ("retry_backoff_max", float("nan")),
        ("retry_jitter", 1.5),
        ("stream_first_token_timeout", 0),
        ("stream_idle_timeout", -1),
        ("stream_total_timeout", 0),
        ("default_timeout", float("inf")),
    ],
)
def test_settings_name_the_bad_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        OrchestratorSettings(**{field: value})
    assert info.value.field == field


def test_backoff_max_below_backoff_is_refused_and_config_names_the_section() -> None:
    with pytest.raises(ConfigError, match="retry_backoff_max"):
        OrchestratorSettings(retry_backoff=2.0, retry_backoff_max=1.0)
    with pytest.raises(ConfigError) as info:
        load_config(environ={"PRSM_ORCHESTRATOR__RETRY_JITTER": "2"})
    assert info.value.field == "orchestrator.retry_jitter"
    cfg = load_config(environ={"PRSM_ORCHESTRATOR__RETRY_BACKOFF": "0.25",
                               "PRSM_ORCHESTRATOR__STREAM_TOTAL_TIMEOUT": "600"})  # fmt: skip
    assert cfg.orchestrator.retry_backoff == 0.25
    assert cfg.orchestrator.stream_total_timeout == 600.0


# -- the drivers carry the decisions out --------------------------------------------------


class Flaky:
    """Each node answers the errors queued for it, in order, then succeeds."""

    def __init__(self) -> None:
        self.queued: dict[str, list[UpstreamError]] = {}
        self.calls: list[str] = []

    def __call__(self, node: NodeSpec, request: AIRequest) -> str:
        self.calls.append(node.id)
        errors = self.queued.get(node.id)
        if errors:
            raise errors.pop(0)
        return node.id


def _perf(clock: ManualClock, up: Flaky, n: int = 1, **settings: Any) -> PerformanceOrchestrator:
    settings.setdefault("retry_jitter", 0.0)
    return PerformanceOrchestrator(
        load_balancing="round_robin",
        nodes=[NodeSpec(f"n{i}", models={"m"}) for i in range(n)],
        upstream=CallableUpstream(up),
        settings=OrchestratorSettings(**settings),
        clock=clock,
        rng=random.Random(0),
    )


def _sample(perf: PerformanceOrchestrator, name: str, **labels: str) -> float | None:
    value: float | None = perf.metrics.registry.get_sample_value(f"prsm_{name}", labels)
    return value


async def test_handle_sleeps_the_nodes_retry_after_on_the_clock(clock: ManualClock) -> None:
    up = Flaky()
    up.queued["n0"] = [UpstreamUnavailableError("n0", "answered 429", status=429, retry_after=3)]
    perf = _perf(clock, up)
    task = asyncio.create_task(perf.handle(AIRequest(model="m", timeout=10)))
    for _ in range(5):
        await asyncio.sleep(0)
    assert clock.sleepers == 1 and not task.done()  # waiting on the injected clock
    clock.advance(2.9)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(0.1)
    result = await task
    assert result.ok and result.attempts == 2 and up.calls == ["n0", "n0"]
    assert _sample(perf, "orchestrator_retries_total", reason="rate_limited") == 1.0


async def test_a_retry_is_logged_at_debug_with_its_reason(
    auto_clock: SleepRecordingClock, caplog: pytest.LogCaptureFixture
) -> None:
    up = Flaky()
    up.queued["n0"] = [UpstreamUnavailableError("n0", "answered 502", status=502)]
    perf = _perf(auto_clock, up, n=2)
    with caplog.at_level(logging.DEBUG, logger="prsm.performance.orchestrator"):
        result = await perf.handle(AIRequest(model="m", id="r-1"))
    assert result.node_id == "n1"
    assert any(
        "r-1" in r.getMessage() and "server_error" in r.getMessage() and r.levelno == logging.DEBUG
        for r in caplog.records
    )
    assert auto_clock.slept == []  # another node: no back-off


async def test_a_retry_after_past_the_deadline_reaches_the_caller_at_once(
    auto_clock: SleepRecordingClock,
) -> None:
    up = Flaky()
    err = UpstreamUnavailableError("n0", "answered 429", status=429, retry_after=120)
    up.queued["n0"] = [err]
    perf = _perf(auto_clock, up)
    with pytest.raises(UpstreamUnavailableError) as info:
        await perf.handle(AIRequest(model="m", timeout=30))
    assert info.value is err and info.value.retry_after == 120
    assert auto_clock.slept == [] and auto_clock.monotonic() == 0.0  # no useless wait
    assert _sample(perf, "orchestrator_gave_up_total", reason="retry_after_beyond_deadline") == 1


async def test_streams_follow_the_same_policy(auto_clock: SleepRecordingClock) -> None:
    class Streams:
        def __init__(self) -> None:
            self.fails = 2

        async def execute(self, node: NodeSpec, request: AIRequest) -> Any:
            raise AssertionError("not called")

        async def stream(self, node: NodeSpec, request: AIRequest) -> Any:
            if self.fails:
                self.fails -= 1
                raise UpstreamUnavailableError(node.id, "answered 503", status=503)
            yield b"data: ok\n\n"

    perf = PerformanceOrchestrator(
        nodes=[NodeSpec("n0", models={"m"})],
        upstream=Streams(),
        settings=OrchestratorSettings(retry_jitter=0.0, retry_backoff=0.5),
        clock=auto_clock,
    )
    chunks = [c async for c in perf.handle_stream(AIRequest(model="m"))]
    assert chunks == [b"data: ok\n\n"]
    assert auto_clock.slept == [0.5, 1.0]
    assert _sample(perf, "orchestrator_retries_total", reason="server_error") == 2.0


def test_the_orchestrator_section_is_the_one_source_of_request_timeouts() -> None:
    from prsm.performance.gateway._settings import GatewaySettings

    cfg = load_config(environ={"PRSM_ORCHESTRATOR__DEFAULT_TIMEOUT": "90"})
    assert cfg.gateway.request_timeout is None  # the gateway defers to the orchestrator ...
    assert cfg.orchestrator.default_timeout == 90.0
    assert GatewaySettings(request_timeout=5).request_timeout == 5.0  # ... unless told
    with pytest.raises(ConfigError, match="request_timeout"):
        GatewaySettings(request_timeout=0)
