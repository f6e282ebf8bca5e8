"""A node back from an outage gets traffic again within one probe: the probe is sent as soon
as its breaker's open interval ends (whatever its learned score), and a successful probe
restores the score its failures had sunk (ManualClock, no sleeps)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from prsm.performance.clock import ManualClock
from prsm.performance.errors import UpstreamUnavailableError
from prsm.performance.orchestrator import OrchestratorSettings
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.resilience import BreakerSettings, CircuitState
from prsm.performance.routing import AILoadBalancer, NodeRegistry, NodeSpec, PerformanceTracker
from prsm.performance.types import AIRequest
from prsm.performance.upstreams._base import CallableUpstream

RESET = 5.0


class Outage:
    """Nodes in ``down`` refuse every call; the others answer."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.calls: list[str] = []

    def __call__(self, node: NodeSpec, request: AIRequest) -> str:
        self.calls.append(node.id)
        if node.id in self.down:
            raise UpstreamUnavailableError(node.id, "connection refused")
        return node.id


def _perf(clock: ManualClock, up: Outage, threshold: int = 1) -> PerformanceOrchestrator:
    return PerformanceOrchestrator(
        load_balancing="intelligent",
        nodes=[NodeSpec(n, models=frozenset({"m"})) for n in ("a", "b", "c")],
        upstream=CallableUpstream(up),
        settings=OrchestratorSettings(retry_jitter=0.0),
        breaker_settings=BreakerSettings(failure_threshold=threshold, reset_timeout=RESET),
        clock=clock,
        rng=random.Random(0),
    )


async def _send(perf: PerformanceOrchestrator, n: int, clock: ManualClock) -> None:
    for _ in range(n):
        result = await asyncio.wait_for(perf.handle(AIRequest(model="m", timeout=10)), 5)
        assert result.ok  # every request is answered (a failed try is retried elsewhere)
        clock.advance(0.01)


async def test_a_recovered_node_is_probed_at_once_and_gets_traffic_back(
    clock: ManualClock,
) -> None:
    up = Outage()
    perf = _perf(clock, up)
    await _send(perf, 30, clock)
    assert len(up.calls) == 30  # healthy: one try each
    busiest = Counter(up.calls).most_common(1)[0][0]
    up.down.add(busiest)
    await _send(perf, 30, clock)  # the outage: the breaker opens, then probes fail
    assert perf.breakers.get(busiest).state is CircuitState.OPEN
    for _ in range(int(30 / RESET)):  # 30 s of outage: one failed probe per open interval
        before = up.calls.count(busiest)
        clock.advance(RESET)
        await _send(perf, 5, clock)
        assert up.calls.count(busiest) == before + 1  # exactly one probe, the first request
    up.down.clear()  # it is back
    clock.advance(RESET)
    up.calls.clear()
    await _send(perf, 1, clock)
    assert up.calls == [busiest]  # the first request after the interval is the probe
    assert perf.breakers.get(busiest).state is CircuitState.CLOSED
    await _send(perf, 30, clock)
    assert up.calls.count(busiest) >= 5  # and traffic returned to it


def test_the_probe_pick_comes_first_and_ends_when_the_breaker_closes() -> None:
    registry = NodeRegistry()
    tracker = PerformanceTracker()
    for n in ("a", "b"):
        registry.add(NodeSpec(n, models=frozenset({"m"})))
    lb = AILoadBalancer(registry, tracker, clock=ManualClock())
    for _ in range(20):
        tracker.record("a", 0.01, False, 0.0)  # a's score is at the bottom
        tracker.record("b", 0.01, True, 0.0)
    request = AIRequest(model="m")
    assert lb.pick(request, 1.0).id == "b"
    lb.set_blocked("a", 6.0)  # its breaker opened until t = 6
    assert lb.pick(request, 5.9).id == "b"
    assert lb.pick(AIRequest(model="m", stream=True), 6.0).id == "b"  # a stream is no probe
    assert lb.pick(request, 6.0).id == "a"  # due a probe: the next unary request probes
    lb.set_blocked("a", float("inf"))  # half-open, the probe in flight
    assert lb.pick(request, 6.1).id == "b"
    lb.set_blocked("a", 0.0)  # closed
    assert lb.pick(request, 6.2).id == "b"  # the probe priority is over
    tracker.restore("a")  # what the orchestrator does when the breaker closes
    assert tracker.stats("a").success_rate == 1.0
    assert tracker.stats("a").requests == 20  # counts and latency are kept


def test_restore_leaves_an_unknown_or_trusted_node_alone() -> None:
    tracker = PerformanceTracker()
    tracker.restore("nobody")
    assert tracker.all() == {}
    tracker.record("a", 0.01, True, 0.0)
    before = tracker.stats("a")
    tracker.restore("a")
    assert tracker.stats("a") is before


async def test_a_node_avoided_before_its_breaker_opened_is_probed_too(
    clock: ManualClock,
) -> None:
    up = Outage()
    perf = _perf(clock, up, threshold=3)
    await _send(perf, 5, clock)
    first = up.calls[-1]
    up.down.add(first)
    await _send(perf, 10, clock)  # one failure: the router turns away before three
    assert up.calls.count(first) < 5 + 3
    assert perf.breakers.get(first).state is CircuitState.CLOSED
    up.down.clear()
    clock.advance(RESET)
    up.calls.clear()
    await _send(perf, 1, clock)
    assert up.calls == [first]  # the probe, one open interval after its last failure
    await _send(perf, 30, clock)
    assert up.calls.count(first) >= 5  # it is trusted again: traffic returned


async def test_after_a_failed_probe_the_next_comes_one_probe_interval_later(
    clock: ManualClock,
) -> None:
    """Whether its breaker opened or the router turned away first, a node that stays down
    is probed every probe_interval after its first failed probe, so a node that comes back
    gets traffic at the first probe after it did, not a reset_timeout later."""
    for threshold in (1, 10):  # the breaker opens / never opens (the router's own probes)
        up = Outage()
        perf = _perf(clock, up, threshold=threshold)
        await _send(perf, 5, clock)
        first = up.calls[-1]
        up.down.add(first)
        await _send(perf, 10, clock)
        clock.advance(RESET)
        up.calls.clear()
        await _send(perf, 1, clock)
        assert up.calls[0] == first  # the first probe, a reset_timeout on: it fails
        interval = perf.breaker_settings.probe_interval
        assert interval == 0.5
        for _ in range(4):  # still down: one failed probe each interval
            clock.advance(interval)
            up.calls.clear()
            await _send(perf, 3, clock)
            assert up.calls.count(first) == 1
        up.down.clear()  # back
        clock.advance(interval)
        up.calls.clear()
        await _send(perf, 1, clock)
        assert up.calls == [first]  # the next probe finds it
        await _send(perf, 30, clock)
        assert up.calls.count(first) >= 5, threshold
