"""Hedged requests: the pure policy (delay, budget, decisions) and the unary driver's race on
a ManualClock (no sleeps): the first good answer wins, the other attempt is cancelled, every
hedge is counted, the budget bounds them, and the router learns the loser was slow."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from prsm.performance._awaiting import loop_timers
from prsm.performance._ticks import RESOLUTION, TickTimers
from prsm.performance.clock import ManualClock
from prsm.performance.errors import ConfigError, NoCapableNodesError, UpstreamUnavailableError
from prsm.performance.orchestrator import OrchestratorSettings
from prsm.performance.orchestrator._hedge import Hedge, HedgePolicy, NoHedge
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.resilience import CircuitState
from prsm.performance.routing import NodeSpec
from prsm.performance.routing._tracker import NodeStats
from prsm.performance.types import AIRequest
from prsm.performance.upstreams._base import CallableUpstream

# -- the policy ------------------------------------------------------------------------------


def test_the_delay_is_a_high_quantile_of_the_nodes_latency_within_its_bounds() -> None:
    p = HedgePolicy(factor=2.0, min_delay=0.05, max_delay=1.0)
    assert p.delay(NodeStats()) == 0.05  # nothing learned: the floor
    learned = NodeStats(requests=10, latency=0.1, deviation=0.02)
    assert p.delay(learned) == pytest.approx(2.0 * (0.1 + 4 * 0.02))
    assert p.delay(NodeStats(requests=10, latency=0.001)) == 0.05
    assert p.delay(NodeStats(requests=10, latency=5.0)) == 1.0  # the cap


def test_the_budget_fills_by_ratio_up_to_its_burst() -> None:
    p = HedgePolicy(ratio=0.25, burst=2.0)
    tokens = 0.0
    for _ in range(4):
        tokens = p.deposit(tokens)
    assert tokens == pytest.approx(1.0)
    for _ in range(100):
        tokens = p.deposit(tokens)
    assert tokens == 2.0


def test_decide_hedges_on_another_node_and_spends_a_token() -> None:
    p = HedgePolicy()
    other = NodeSpec("b", models=frozenset({"m"}))
    decision, left = p.decide(1.5, 1.0, 10.0, lambda: other)
    assert decision == Hedge(other) and left == pytest.approx(0.5)
    assert p.decide(0.99, 1.0, 10.0, lambda: other) == (NoHedge("budget"), 0.99)
    assert p.decide(3.0, 10.0, 10.0, lambda: other) == (NoHedge("deadline"), 3.0)

    def none() -> NodeSpec:
        raise NoCapableNodesError(frozenset(), {}, reason="every capable node is excluded")

    assert p.decide(3.0, 1.0, 10.0, none) == (NoHedge("no_node"), 3.0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hedge", "yes"),
        ("hedge_factor", 0.5),
        ("hedge_factor", float("nan")),
        ("hedge_min_delay", 0),
        ("hedge_max_delay", -1.0),
        ("hedge_budget", 0.0),
        ("hedge_budget", 1.5),
        ("hedge_burst", 0.5),
        ("hedge_burst", True),
    ],
)
def test_bad_hedge_settings_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=field):
        OrchestratorSettings(**{field: value})


def test_the_cap_may_not_be_below_the_floor() -> None:
    with pytest.raises(ConfigError, match="hedge_max_delay"):
        OrchestratorSettings(hedge_min_delay=0.5, hedge_max_delay=0.1)


# -- the driver --------------------------------------------------------------------------------


class Gates:
    """An upstream whose nodes answer when the test opens their gate (at once if it has
    none), or fail with ``fail``; it records calls and the calls cancelled."""

    def __init__(self, *slow: str) -> None:
        self.gates = {n: asyncio.Event() for n in slow}
        self.fail: dict[str, BaseException] = {}
        self.calls: list[str] = []
        self.cancelled: list[str] = []

    async def __call__(self, node: NodeSpec, request: AIRequest) -> str:
        self.calls.append(node.id)
        gate = self.gates.get(node.id)
        if gate is not None:
            try:
                await gate.wait()
            except asyncio.CancelledError:
                self.cancelled.append(node.id)
                raise
        err = self.fail.get(node.id)
        if err is not None:
            raise err
        return f"answer of {node.id}"


DELAY = 0.05  # the default hedge_min_delay: what a node with nothing learned gets


def _perf(clock: ManualClock, up: Gates, n: int = 3, **settings: Any) -> PerformanceOrchestrator:
    settings.setdefault("retry_jitter", 0.0)
    return PerformanceOrchestrator(
        load_balancing="round_robin",  # n0 first, then n1, …
        nodes=[NodeSpec(f"n{i}", models=frozenset({"m"})) for i in range(n)],
        upstream=CallableUpstream(up),
        settings=OrchestratorSettings(**settings),
        clock=clock,
        rng=random.Random(0),
    )


def _hedges(perf: PerformanceOrchestrator, outcome: str) -> float:
    value = perf.metrics.registry.get_sample_value(
        "prsm_orchestrator_hedges_total", {"outcome": outcome}
    )
    return value or 0.0


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def _start(perf: PerformanceOrchestrator) -> asyncio.Task[Any]:
    task = asyncio.create_task(perf.handle(AIRequest(model="m", timeout=10)))
    await _settle()
    return task


async def test_a_fast_answer_sends_no_hedge_and_leaves_no_timer(clock: ManualClock) -> None:
    up = Gates()
    perf = _perf(clock, up)
    result = await perf.handle(AIRequest(model="m", timeout=10))
    await _settle()
    assert result.ok and result.attempts == 1 and up.calls == ["n0"]
    assert clock.sleepers == 0  # the hedge timer was cancelled
    assert _hedges(perf, "sent") == 0


async def test_a_slow_first_attempt_is_hedged_and_the_hedge_wins(clock: ManualClock) -> None:
    up = Gates("n0")
    perf = _perf(clock, up)
    perf.tracker.record("n0", 0.02, True, 0.0)  # n0 was fast before: its delay is 1.5 × 0.06 s
    task = await _start(perf)
    clock.advance(0.089)
    await _settle()
    assert up.calls == ["n0"] and not task.done()
    clock.advance(0.001)
    result = await asyncio.wait_for(task, 5)
    assert result.ok and result.node_id == "n1" and result.attempts == 2
    assert result.response is not None and result.response.content == "answer of n1"
    assert up.cancelled == ["n0"]  # the loser is cancelled
    assert _hedges(perf, "sent") == 1 and _hedges(perf, "won") == 1
    # no duplicate side effects: one request answered, one node answer used, nothing in flight
    assert (
        perf.metrics.registry.get_sample_value(
            "prsm_orchestrator_requests_total", {"outcome": "ok"}
        )
        == 1.0
    )
    assert up.calls == ["n0", "n1"]
    assert perf.registry.entry("n0").in_flight == perf.registry.entry("n1").in_flight == 0
    # the loser is not failed, but the router learns it was slow (at least DELAY)
    assert perf.breakers.get("n0").state is CircuitState.CLOSED
    assert perf.breakers.get("n0").snapshot.failures == 0
    stats = perf.tracker.stats("n0")
    assert stats.success_rate == 1.0 and stats.latency == pytest.approx(0.02 + 0.2 * 0.07)


async def test_the_first_attempt_wins_and_the_hedge_is_cancelled(clock: ManualClock) -> None:
    up = Gates("n0", "n1")
    perf = _perf(clock, up)
    task = await _start(perf)
    clock.advance(DELAY)
    await _settle()
    assert up.calls == ["n0", "n1"]  # the hedge went out
    up.gates["n0"].set()
    result = await task
    await _settle()
    assert result.ok and result.node_id == "n0" and result.attempts == 2
    assert up.cancelled == ["n1"]
    assert _hedges(perf, "sent") == 1 and _hedges(perf, "cancelled") == 1
    assert perf.registry.entry("n1").in_flight == 0
    assert perf.breakers.get("n1").snapshot.failures == 0


async def test_a_failed_first_attempt_waits_for_the_hedge(clock: ManualClock) -> None:
    up = Gates("n0", "n1")
    up.fail["n0"] = UpstreamUnavailableError("n0", "connection reset")
    perf = _perf(clock, up)
    task = await _start(perf)
    clock.advance(DELAY)
    await _settle()
    up.gates["n0"].set()  # n0 fails while the hedge is out: no retry yet
    await _settle()
    assert not task.done() and up.calls == ["n0", "n1"]
    up.gates["n1"].set()
    result = await task
    assert result.ok and result.node_id == "n1" and result.attempts == 2
    assert _hedges(perf, "won") == 1
    assert perf.breakers.get("n0").snapshot.failures == 1  # counted once


async def test_when_both_fail_the_retry_policy_goes_on_to_a_third_node(
    clock: ManualClock,
) -> None:
    up = Gates("n0", "n1")
    up.fail["n0"] = UpstreamUnavailableError("n0", "refused")
    up.fail["n1"] = UpstreamUnavailableError("n1", "refused")
    perf = _perf(clock, up)
    task = await _start(perf)
    clock.advance(DELAY)
    await _settle()
    up.gates["n1"].set()  # the hedge fails first: the first attempt goes on
    await _settle()
    assert not task.done()
    up.gates["n0"].set()
    result = await task
    assert result.ok and result.node_id == "n2" and result.attempts == 3
    assert up.calls == ["n0", "n1", "n2"]
    assert _hedges(perf, "failed") == 1


async def test_the_budget_bounds_hedges_to_its_share_of_requests(clock: ManualClock) -> None:
    up = Gates()
    perf = _perf(clock, up, n=2, hedge_budget=0.1, hedge_burst=2.0, hedge_max_delay=0.5)
    for _ in range(50):  # every first attempt is slow
        up.gates = {"n0": asyncio.Event(), "n1": asyncio.Event()}
        task = await _start(perf)
        clock.advance(1.0)  # past the longest hedge delay
        await _settle()
        for gate in up.gates.values():
            gate.set()
        assert (await task).ok
    # the burst, then one in ten: 2 + 48 × 0.1 tokens
    assert _hedges(perf, "sent") == 6
    assert len(up.calls) == 56


async def test_one_capable_node_means_no_hedge_and_it_is_counted(clock: ManualClock) -> None:
    up = Gates("n0")
    perf = _perf(clock, up, n=1)
    task = await _start(perf)
    clock.advance(DELAY)
    await _settle()
    assert _hedges(perf, "skipped_no_node") == 1
    up.gates["n0"].set()
    result = await task
    assert result.ok and result.attempts == 1 and up.calls == ["n0"]


async def test_hedging_off_sends_none(clock: ManualClock) -> None:
    up = Gates("n0")
    perf = _perf(clock, up, hedge=False)
    task = await _start(perf)
    clock.advance(5.0)
    await _settle()
    assert up.calls == ["n0"] and clock.sleepers == 0
    up.gates["n0"].set()
    assert (await task).attempts == 1


async def test_a_cancelled_caller_cancels_both_attempts(clock: ManualClock) -> None:
    up = Gates("n0", "n1")
    perf = _perf(clock, up)
    task = await _start(perf)
    clock.advance(DELAY)
    await _settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _settle()
    assert sorted(up.cancelled) == ["n0", "n1"]
    assert perf.registry.entry("n0").in_flight == perf.registry.entry("n1").in_flight == 0


async def test_a_hedge_is_logged_at_debug(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    up = Gates("n0")
    perf = _perf(clock, up)
    with caplog.at_level("DEBUG", logger="prsm.performance.orchestrator"):
        task = await _start(perf)
        clock.advance(DELAY)
        await task
    assert any("hedging on n1, n0 unanswered" in r.getMessage() for r in caplog.records)


# -- the shared tick timers (the system clock's hedge timers) ----------------------------------


class FakeLoop:
    """The two things TickTimers asks of a loop: its time, and one timer."""

    def __init__(self) -> None:
        self.now = 100.0
        self.armed: list[tuple[float, Any]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any) -> Any:
        loop = self

        class Handle:
            def cancel(self) -> None:
                loop.armed.remove(entry)

        entry = (when, callback)
        self.armed.append(entry)
        return Handle()


def test_tick_timers_fire_due_entries_never_early_and_skip_discarded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fired: list[str] = []

    def on_fire(key: str, value: int) -> None:
        if key == "bad":
            raise RuntimeError("a callback that fails")
        fired.append(key)

    timers: TickTimers[str, int] = TickTimers(on_fire)
    loop = FakeLoop()
    ta = timers.add(loop, "a", 1, 0.05)  # type: ignore[arg-type]
    timers.add(loop, "bad", 0, 0.05)  # type: ignore[arg-type]
    tb = timers.add(loop, "b", 2, 0.05)  # type: ignore[arg-type]
    timers.add(loop, "c", 3, 0.5)  # type: ignore[arg-type]
    assert ta == tb and len(loop.armed) == 1  # one loop timer, at the earliest tick
    when, fire = loop.armed[0]
    assert 100.05 <= when <= 100.05 + RESOLUTION + 1e-9
    timers.discard("b", tb)
    loop.now = when
    loop.armed.clear()
    with caplog.at_level("ERROR", logger="prsm.performance.ticks"):
        fire()
    assert fired == ["a"]  # b was discarded; bad raised, was logged, and stopped nothing
    assert "a timer's callback failed" in caplog.text
    assert len(loop.armed) == 1 and loop.armed[0][0] >= 100.5  # re-armed for c
    loop.now = loop.armed[0][0]
    loop.armed.pop()[1]()
    assert fired == ["a", "c"] and not loop.armed
    timers.discard("c", 0)  # after it fired: nothing


async def test_on_the_system_clock_a_hedge_goes_out_through_the_shared_ticks() -> None:
    up = Gates("n0")
    perf = PerformanceOrchestrator(
        load_balancing="round_robin",
        nodes=[NodeSpec(f"n{i}", models=frozenset({"m"})) for i in range(2)],
        upstream=CallableUpstream(up),
        settings=OrchestratorSettings(hedge_min_delay=0.001),
    )
    result = await asyncio.wait_for(perf.handle(AIRequest(model="m", timeout=10)), 5)
    assert result.ok and result.node_id == "n1" and result.attempts == 2
    assert up.cancelled == ["n0"] and _hedges(perf, "won") == 1
    up.gates["n0"].set()  # n0 is fast again: no hedge
    fast = await perf.handle(AIRequest(model="m", timeout=10))
    assert fast.attempts == 1 and _hedges(perf, "sent") == 1


async def test_a_waiting_first_attempt_files_one_timer_entry_and_an_answer_at_once_none() -> None:
    up = Gates("n0")
    perf = PerformanceOrchestrator(
        load_balancing="round_robin",
        nodes=[NodeSpec(f"n{i}", models=frozenset({"m"})) for i in range(2)],
        upstream=CallableUpstream(up),
    )
    timers = loop_timers(asyncio.get_running_loop())

    def entries() -> int:
        return sum(len(tick) for tick in timers.ticks.values())

    before, ticks = entries(), len(timers.heap)
    task = asyncio.create_task(perf.handle(AIRequest(model="m", timeout=10)))
    await _settle()
    assert entries() == before + 1  # its hedge delay and its deadline: one entry
    up.gates["n0"].set()
    assert (await task).attempts == 1
    assert entries() == before
    filed = len(timers.heap)
    fast = await perf.handle(AIRequest(model="m", timeout=10))  # n1 answers without waiting
    assert fast.ok and fast.node_id == "n1"
    assert len(timers.heap) == filed and ticks <= filed  # nothing filed for it at all
    assert _hedges(perf, "sent") == 0
