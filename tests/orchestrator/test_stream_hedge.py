"""First-token hedging for streams, on a ManualClock (no sleeps): a stream whose first chunk
is late goes to a second node too, the first to send a chunk is kept and the other closed,
each hedge is counted like a unary one and spends the same budget; and against two real
upstream simulators on loopback, the slow node's connection is closed."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.errors import UpstreamUnavailableError
from prsm.performance.fakes import SimSettings, UpstreamSimulator
from prsm.performance.orchestrator import OrchestratorSettings
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.routing import NodeSpec
from prsm.performance.types import AIRequest
from prsm.performance.upstreams._base import CallableUpstream
from prsm.performance.upstreams._http import HttpUpstream

DELAY = 0.05  # the default hedge_min_delay: what a node with nothing learned gets


class GatedStreams(CallableUpstream):
    """Streams that send their first chunk when the test opens their node's gate (at once
    without one), or fail with ``fail`` there; records the streams started and closed."""

    def __init__(self, *slow: str) -> None:
        super().__init__(lambda node, request: "x")
        self.gates = {n: asyncio.Event() for n in slow}
        self.fail: dict[str, BaseException] = {}
        self.calls: list[str] = []
        self.closed: list[str] = []

    async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:  # type: ignore[override]
        self.calls.append(node.id)
        try:
            gate = self.gates.get(node.id)
            if gate is not None:
                await gate.wait()
            err = self.fail.get(node.id)
            if err is not None:
                raise err
            yield f"data: {node.id} 1\n\n".encode()
            yield f"data: {node.id} 2\n\n".encode()
        finally:
            self.closed.append(node.id)


def _perf(
    clock: ManualClock, up: GatedStreams, n: int = 3, **settings: Any
) -> PerformanceOrchestrator:
    settings.setdefault("retry_jitter", 0.0)
    return PerformanceOrchestrator(
        load_balancing="round_robin",  # n0 first, then n1, …
        nodes=[NodeSpec(f"n{i}", models=frozenset({"m"})) for i in range(n)],
        upstream=up,
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
    for _ in range(20):
        await asyncio.sleep(0)


async def _start(perf: PerformanceOrchestrator) -> asyncio.Task[list[bytes]]:
    async def consume() -> list[bytes]:
        return [c async for c in perf.handle_stream(AIRequest(model="m", stream=True, timeout=10))]

    task = asyncio.create_task(consume())
    await _settle()
    return task


def _idle(perf: PerformanceOrchestrator, *nodes: str) -> bool:
    return all(perf.registry.entry(n).in_flight == 0 for n in nodes)


async def test_a_first_chunk_at_once_sends_no_hedge_and_arms_no_timer(clock: ManualClock) -> None:
    up = GatedStreams()
    perf = _perf(clock, up)
    task = await _start(perf)
    assert clock.sleepers == 0
    assert await task == [b"data: n0 1\n\n", b"data: n0 2\n\n"]
    assert up.calls == ["n0"] and _hedges(perf, "sent") == 0


async def test_a_late_first_chunk_is_hedged_and_the_hedge_wins(clock: ManualClock) -> None:
    up = GatedStreams("n0")
    perf = _perf(clock, up)
    task = await _start(perf)
    clock.advance(DELAY - 0.01)
    await _settle()
    assert up.calls == ["n0"]  # not before the delay
    clock.advance(0.01)
    assert await task == [b"data: n1 1\n\n", b"data: n1 2\n\n"]
    assert up.calls == ["n0", "n1"] and sorted(up.closed) == ["n0", "n1"]  # n0's closed
    assert _hedges(perf, "sent") == 1 and _hedges(perf, "won") == 1
    assert perf.breakers.get("n0").snapshot.failures == 0  # let go, not failed
    assert perf.tracker.stats("n0").latency >= DELAY  # the router learns it was slow
    assert _idle(perf, "n0", "n1")


async def test_the_first_stream_wins_and_the_hedge_is_closed(clock: ManualClock) -> None:
    up = GatedStreams("n0", "n1")
    perf = _perf(clock, up)
    task = await _start(perf)
    clock.advance(DELAY)
    await _settle()
    assert up.calls == ["n0", "n1"]
    up.gates["n0"].set()
    assert await task == [b"data: n0 1\n\n", b"data: n0 2\n\n"]
    await _settle()
    assert "n1" in up.closed
    assert _hedges(perf, "cancelled") == 1 and _hedges(perf, "won") == 0
    assert perf.breakers.get("n1").snapshot.failures == 0
    assert _idle(perf, "n0", "n1")


async def test_two_first_chunks_at_once_keep_one_stream_and_close_the_other(
    clock: ManualClock,
) -> None:
    up = GatedStreams("n0", "n1")
    perf = _perf(clock, up)
    task = await _start(perf)
    clock.advance(DELAY)
    await _settle()
    up.gates["n1"].set()
    up.gates["n0"].set()  # both chunks ready in the same turn of the loop
    chunks = await task
    await _settle()
    winner = chunks[0].split()[1].decode()
    assert chunks == [f"data: {winner} 1\n\n".encode(), f"data: {winner} 2\n\n".encode()]
    assert sorted(up.closed) == ["n0", "n1"]  # the loser's stream closed too
    assert _hedges(perf, "won") + _hedges(perf, "cancelled") == 1
    assert _idle(perf, "n0", "n1")


async def test_a_failed_first_stream_waits_for_its_hedge(clock: ManualClock) -> None:
    up = GatedStreams("n0", "n1")
    up.fail["n0"] = UpstreamUnavailableError("n0", "down")
    perf = _perf(clock, up)
    task = await _start(perf)
    clock.advance(DELAY)
    await _settle()
    up.gates["n0"].set()  # n0 fails now, while the hedge is out
    await _settle()
    assert not task.done() and up.calls == ["n0", "n1"]
    up.gates["n1"].set()
    assert await task == [b"data: n1 1\n\n", b"data: n1 2\n\n"]
    assert _hedges(perf, "won") == 1
    assert perf.breakers.get("n0").snapshot.failures == 1
    assert _idle(perf, "n0", "n1")


async def test_when_both_fail_the_retry_policy_goes_on_to_a_third_node(
    clock: ManualClock,
) -> None:
    up = GatedStreams("n0", "n1")
    up.fail["n0"] = up.fail["n1"] = UpstreamUnavailableError("n", "down")
    perf = _perf(clock, up)
    task = await _start(perf)
    clock.advance(DELAY)
    await _settle()
    up.gates["n1"].set()
    await _settle()
    up.gates["n0"].set()
    await _settle()
    clock.advance(1.0)  # any back-off
    assert await task == [b"data: n2 1\n\n", b"data: n2 2\n\n"]
    assert up.calls == ["n0", "n1", "n2"]  # n2: both tried nodes were excluded
    assert _hedges(perf, "failed") == 1 and _hedges(perf, "won") == 0
    assert _idle(perf, "n0", "n1", "n2")


async def test_streams_spend_the_unary_budget(clock: ManualClock) -> None:
    up = GatedStreams("n0")
    perf = _perf(clock, up, hedge_burst=1.0, hedge_budget=0.1)
    task = await _start(perf)  # the budget starts full: one token
    clock.advance(DELAY)
    assert len(await task) == 2 and _hedges(perf, "sent") == 1
    up.gates["n2"] = asyncio.Event()
    task = await _start(perf)  # 0.1 token now: no hedge, and no timer armed for one
    assert clock.sleepers == 0
    clock.advance(DELAY)
    await _settle()
    assert up.calls == ["n0", "n1", "n2"]  # round robin: this stream went to n2, alone
    up.gates["n2"].set()
    assert await task == [b"data: n2 1\n\n", b"data: n2 2\n\n"]
    assert _hedges(perf, "sent") == 1 and _hedges(perf, "skipped_budget") == 0


async def test_a_cancelled_caller_closes_both_streams(clock: ManualClock) -> None:
    up = GatedStreams("n0", "n1")
    perf = _perf(clock, up)
    task = await _start(perf)
    clock.advance(DELAY)
    await _settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _settle()
    assert sorted(up.closed) == ["n0", "n1"]
    assert _idle(perf, "n0", "n1")


@pytest.mark.integration
async def test_against_the_simulator_the_slow_nodes_stream_is_closed() -> None:
    """Two real upstream simulators: n0's first token takes 5 s, n1's 10 ms; the stream is
    n1's, and n0's connection is closed at once (the wait is the 50 ms hedge delay)."""
    slow = UpstreamSimulator(SimSettings(port=0, name="slow", ttft=5.0))
    fast = UpstreamSimulator(SimSettings(port=0, name="fast", ttft=0.01))
    ports = [await slow.start(), await fast.start()]
    nodes = [
        NodeSpec(f"n{i}", url=f"http://127.0.0.1:{port}/v1", models=frozenset({"sim-chat"}))
        for i, port in enumerate(ports)
    ]
    chat = {"model": "sim-chat", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 3, "stream": True}  # fmt: skip
    try:
        async with HttpUpstream() as up:
            perf = PerformanceOrchestrator(load_balancing="round_robin", nodes=nodes, upstream=up)
            request = AIRequest(model="sim-chat", payload=chat, stream=True, timeout=10)
            body = b"".join([c async for c in perf.handle_stream(request)])
            assert b'"system_fingerprint":"fast"' in body and body.endswith(b"data: [DONE]\n\n")
            assert _hedges(perf, "sent") == 1 and _hedges(perf, "won") == 1
            slow_pool = up._targets["n0"].pool
            assert slow.stats.requests == 1  # n0 was asked first
            assert all(c.closed for c in slow_pool.connections)
            assert not slow_pool.idle  # closed by us, not kept for reuse
            assert _idle(perf, "n0", "n1")
    finally:
        await slow.close()
        await fast.close()
