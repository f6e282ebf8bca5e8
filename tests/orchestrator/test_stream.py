"""Stream limits (issue 14, defect 1): a long healthy stream is never cut by the request's
deadline nor counted against its node; routing learns the time to the first chunk; a node
that misses its first chunk or stalls is counted and named; the optional total limit cuts
a stream without blaming the node."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from prsm.performance.clock import Clock
from prsm.performance.errors import StreamTimeoutError, UpstreamError
from prsm.performance.orchestrator import OrchestratorSettings
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.resilience import BreakerSettings, CircuitState
from prsm.performance.routing._node import NodeSpec
from prsm.performance.types import AIRequest, Response

from .conftest import SleepRecordingClock


class Slow:
    """A streaming upstream: the first chunk after ``ttft`` seconds, then ``chunks - 1`` more,
    ``gap`` seconds apart, on the injected clock; ``hang_first`` / ``hang_after`` nodes wait
    forever before their first / second chunk."""

    def __init__(self, clock: Clock, *, ttft: float = 0.5, gap: float = 10.0, chunks: int = 10):
        self.clock = clock
        self.ttft = ttft
        self.gap = gap
        self.chunks = chunks
        self.hang_first: set[str] = set()
        self.hang_after: set[str] = set()

    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        return Response(content=node.id)

    async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        if node.id in self.hang_first:
            await asyncio.Event().wait()
        await self.clock.sleep(self.ttft)
        for i in range(self.chunks):
            if i:
                if node.id in self.hang_after:
                    await asyncio.Event().wait()
                await self.clock.sleep(self.gap)
            yield f"data: {i}\n\n".encode()


def _perf(clock: Clock, up: Slow, n: int = 1, **kw: Any) -> PerformanceOrchestrator:
    kw.setdefault("load_balancing", "round_robin")
    # the stream limits alone: no first-token hedge (tested in test_stream_hedge.py), whose
    # timer would move this auto-advancing clock
    kw["settings"] = dataclasses.replace(kw.get("settings") or OrchestratorSettings(), hedge=False)
    return PerformanceOrchestrator(
        nodes=[NodeSpec(f"n{i}", models={"m"}) for i in range(n)], upstream=up, clock=clock, **kw
    )


def _failures(perf: PerformanceOrchestrator, node: str) -> float:
    value = perf.metrics.registry.get_sample_value("prsm_node_failures_total", {"node": node})
    return value or 0.0


async def test_a_long_healthy_stream_outlives_the_deadline_and_counts_for_its_node(
    auto_clock: SleepRecordingClock,
) -> None:
    up = Slow(auto_clock)  # 0.5 s to the first chunk, then 90 s more: past a 5 s deadline
    perf = _perf(auto_clock, up, breaker_settings=BreakerSettings(failure_threshold=5))
    for _ in range(5):  # five long answers used to open a healthy node's breaker
        chunks = [c async for c in perf.handle_stream(AIRequest(model="m", timeout=5.0))]
        assert len(chunks) == 10
    assert perf.breakers.get("n0").state is CircuitState.CLOSED
    assert perf.breakers.get("n0").snapshot.failures == 0
    assert _failures(perf, "n0") == 0.0
    stats = perf.tracker.stats("n0")
    assert stats.requests == 5 and stats.failures == 0
    assert stats.latency == pytest.approx(0.5)  # time to first chunk, not the 90.5 s stream
    assert perf.registry.metrics("n0").in_flight == 0


async def test_routing_learns_the_time_to_first_chunk_not_the_streams_length(
    auto_clock: SleepRecordingClock,
) -> None:
    up = Slow(auto_clock, ttft=0.2, gap=5.0, chunks=5)  # 0.2 s to the first chunk, 20.2 s long
    perf = _perf(auto_clock, up)
    chunks = [c async for c in perf.handle_stream(AIRequest(model="m", timeout=1000.0))]
    assert len(chunks) == 5
    assert perf.tracker.stats("n0").latency == pytest.approx(0.2)
    hist = perf.metrics.registry.get_sample_value("prsm_node_latency_seconds_sum", {"node": "n0"})
    assert hist == pytest.approx(0.2)


async def test_a_node_missing_its_first_chunk_is_counted_and_the_next_one_answers(
    auto_clock: SleepRecordingClock,
) -> None:
    up = Slow(auto_clock, chunks=2)
    up.hang_first.add("n0")
    settings = OrchestratorSettings(stream_first_token_timeout=1e-6)  # fires on the next tick
    perf = _perf(auto_clock, up, n=2, settings=settings)
    chunks = [c async for c in perf.handle_stream(AIRequest(model="m"))]
    assert chunks == [b"data: 0\n\n", b"data: 1\n\n"]
    assert _failures(perf, "n0") == 1.0 and _failures(perf, "n1") == 0.0
    retried = perf.metrics.registry.get_sample_value(
        "prsm_orchestrator_retries_total", {"reason": "stream_first_token_timeout"}
    )
    assert retried == 1.0


async def test_a_stalled_stream_is_cut_named_and_counted(
    auto_clock: SleepRecordingClock,
) -> None:
    up = Slow(auto_clock, chunks=3)
    up.hang_after.add("n0")
    perf = _perf(auto_clock, up, settings=OrchestratorSettings(stream_idle_timeout=1e-6))
    got: list[bytes] = []
    with pytest.raises(StreamTimeoutError) as info:
        async for c in perf.handle_stream(AIRequest(model="m")):
            got.append(c)
    assert got == [b"data: 0\n\n"]
    err = info.value
    assert err.phase == "idle" and err.chunks == 1 and err.retryable
    assert "stream stalled" in str(err) and "orchestrator.stream_idle_timeout" in str(err)
    assert _failures(perf, "n0") == 1.0
    assert perf.registry.metrics("n0").in_flight == 0


async def test_the_total_limit_cuts_a_stream_without_blaming_its_node(
    auto_clock: SleepRecordingClock,
) -> None:
    up = Slow(auto_clock)  # a chunk every 10 s
    perf = _perf(auto_clock, up, settings=OrchestratorSettings(stream_total_timeout=25.0))
    got: list[bytes] = []
    with pytest.raises(StreamTimeoutError) as info:
        async for c in perf.handle_stream(AIRequest(model="m")):
            got.append(c)
    assert len(got) == 4  # the 4th chunk came 30 s after the first, past 25 s: then cut
    err = info.value
    assert err.phase == "total" and not err.retryable
    assert "25.000s limit" in str(err) and "orchestrator.stream_total_timeout" in str(err)
    assert _failures(perf, "n0") == 0.0
    assert perf.breakers.get("n0").snapshot.failures == 0
    stats = perf.tracker.stats("n0")
    assert stats.failures == 0 and stats.latency == pytest.approx(0.5)


async def test_an_answer_that_ended_before_a_slow_reader_passed_the_limit_is_not_cut(
    auto_clock: SleepRecordingClock,
) -> None:
    class Whole(Slow):  # the whole answer in one read: no step of it waits
        async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"data: {i}\n\n".encode()

    perf = _perf(auto_clock, Whole(auto_clock), settings=OrchestratorSettings(
        stream_total_timeout=25.0))  # fmt: skip
    got: list[bytes] = []
    async for c in perf.handle_stream(AIRequest(model="m")):
        got.append(c)
        auto_clock.advance(30.0)  # the client reads slowly: past the limit after each chunk
    assert got == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]
    ok = perf.metrics.registry.get_sample_value(
        "prsm_orchestrator_requests_total", {"outcome": "ok"}
    )
    assert _failures(perf, "n0") == 0.0 and ok == 1.0


async def test_a_node_error_mid_stream_still_counts(auto_clock: SleepRecordingClock) -> None:
    class Dropping(Slow):
        async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
            yield b"data: 0\n\n"
            raise UpstreamError(node.id, "connection dropped mid-stream")

    perf = _perf(auto_clock, Dropping(auto_clock))
    with pytest.raises(UpstreamError, match="mid-stream"):
        async for _ in perf.handle_stream(AIRequest(model="m")):
            pass
    assert _failures(perf, "n0") == 1.0
    assert perf.tracker.stats("n0").failures == 1
