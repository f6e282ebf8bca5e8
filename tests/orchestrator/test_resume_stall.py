"""A continuation of a resumed stream of several choices that stalls while the others stream
is held to a single stream's limits: cut at its own first-token or idle limit (a small real
bound), the merged stream then taken over again (or ended with the error), never left to hang
while the others go on (the in-process double of ``test_resume``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import pytest

from prsm.performance import OrchestratorSettings, PerformanceOrchestrator
from prsm.performance.clock import ManualClock
from prsm.performance.errors import StreamTimeoutError
from prsm.performance.routing import NodeSpec
from prsm.performance.types import AIRequest
from tests.orchestrator.test_resume import (
    SimStreams,
    chat,
    collect,
    completion,
    events,
    orchestrator,
    resumes,
)
from tests.orchestrator.test_resume_choices import USAGE, by_index, one_stream

#: the limits (small, real): a healthy continuation never waits this long for a chunk here
LIMIT = 1.0  # (real seconds: the stream timers run on the loop's clock; wide for a loaded CI)
#: a hang's bound: a continuation left stalled while the others stream runs into it
GUARD = 10.0
PING = b": ping\n\n"


def _chat_choice_1(body: dict[str, Any]) -> bool:
    return bool(body["messages"][-1]["content"].startswith("c1."))


def _bye_prompt(body: dict[str, Any]) -> bool:
    return bool(body["prompt"].startswith("say bye "))


#: (the request, where node a cuts it, which continuation stalls)
CASES = {
    "chat n=2": (chat(n=2, **USAGE), 7, _chat_choice_1),
    "completion of 2 prompts": (completion(prompt=["say hello ", "say bye "], **USAGE), 5,
                                _bye_prompt),
}  # fmt: skip


class Stall:
    """On node b, the continuation ``stalls`` picks sends ``at`` frames and then nothing; the
    other continuations send two frames, then keep-alive comments for as long as it stays open
    (a stream that never falls idle), then the rest."""

    def __init__(
        self,
        up: SimStreams,
        stalls: Callable[[dict[str, Any]], bool],
        at: int,
        on_stall: Callable[[], None] = lambda: None,
    ) -> None:
        self.original = up.stream
        self.stalls = stalls
        self.at = at
        self.on_stall = on_stall
        self.stalled_open = False
        self.stalled_closed = False
        up.stream = self.stream  # type: ignore[method-assign]

    async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        stalls = node.id == "b" and self.stalls(dict(request.payload))
        async with aclosing(self.original(node, request)) as frames:
            i = 0
            async for frame in frames:
                if stalls and i == self.at:
                    self.stalled_open = True
                    self.on_stall()
                    try:
                        await asyncio.Event().wait()
                    finally:
                        self.stalled_closed = True
                if node.id == "b" and not stalls and i == 2:
                    while not self.stalled_closed:
                        yield PING
                        await asyncio.sleep(0)
                yield frame
                i += 1


def _events(raw: bytes) -> list[Any]:
    return events(raw.replace(PING, b""))


@pytest.mark.parametrize("at", [0, 2], ids=["before its first chunk", "mid-way"])
@pytest.mark.parametrize("case", CASES)
async def test_a_stalled_continuation_is_cut_and_the_stream_taken_over_again(
    clock: ManualClock, case: str, at: int, caplog: pytest.LogCaptureFixture
) -> None:
    request, cut, stalls = CASES[case]
    reference = _events(await collect(orchestrator(clock, SimStreams(), {"x": True}), request))
    up = SimStreams()
    up.cut["a"] = cut
    stall = Stall(up, stalls, at)
    perf = orchestrator(clock, up, {"a": True, "b": True, "c": True},
                        stream_first_token_timeout=LIMIT, stream_idle_timeout=LIMIT)  # fmt: skip
    async with asyncio.timeout(GUARD):  # (before the fix: the others ping on, it hangs)
        got = _events(await collect(perf, request))
    assert by_index(got) == by_index(reference)  # nothing lost, nothing doubled
    one_stream(got, reference)
    assert got[-2]["usage"] == reference[-2]["usage"]
    assert [n for n, _ in up.bodies] == ["a", "b", "b", "c", "c"]
    assert stall.stalled_open and stall.stalled_closed and up.open == 0
    assert resumes(perf) == {"resumed": 2.0}  # counted, and logged as a stream's stall
    assert perf.tracker.stats("b").failures == 1
    phase = "first_token" if at == 0 else "idle"
    logged = [m for m in caplog.messages if "stream broke on b" in m and "resumed on c" in m]
    assert len(logged) == 1 and f"orchestrator.stream_{phase}_timeout" in logged[0]
    assert all(e.in_flight == 0 for e in perf.registry.entries())


@pytest.mark.parametrize("case", CASES)
async def test_a_stalled_continuation_with_no_node_left_ends_the_stream_with_its_timeout(
    clock: ManualClock, case: str
) -> None:
    request, cut, stalls = CASES[case]
    reference = _events(await collect(orchestrator(clock, SimStreams(), {"x": True}), request))
    up = SimStreams()
    up.cut["a"] = cut
    stall = Stall(up, stalls, 2)
    perf = orchestrator(clock, up, {"a": True, "b": True}, stream_idle_timeout=LIMIT)
    got: list[bytes] = []
    async with asyncio.timeout(GUARD):
        with pytest.raises(StreamTimeoutError) as err:
            async for chunk in perf.handle_stream(request):
                got.append(chunk)
    assert err.value.phase == "idle" and err.value.node_id == "b"
    sent = by_index(_events(b"".join(got)))  # whole events, each choice's text a prefix
    whole = by_index(reference)
    assert all(whole[i].startswith(text) for i, text in sent.items())
    assert stall.stalled_closed and up.open == 0
    assert resumes(perf) == {"resumed": 1.0, "no_node": 1.0}
    assert all(e.in_flight == 0 for e in perf.registry.entries())


async def test_a_continuation_stalled_near_the_total_limit_counts_against_its_node(
    clock: ManualClock,
) -> None:
    request = chat(timeout=5000.0, n=2, **USAGE)
    reference = _events(await collect(orchestrator(clock, SimStreams(), {"x": True}), request))
    up = SimStreams()
    up.cut["a"] = 7
    # it stalls with less than the idle timeout left of the total limit: the driver then
    # waits for the total limit, yet the continuation missed its own idle limit
    stall = Stall(up, _chat_choice_1, 2, lambda: clock.advance(1000.0 - LIMIT / 2))
    perf = orchestrator(clock, up, {"a": True, "b": True, "c": True}, stream_idle_timeout=LIMIT,
                        stream_total_timeout=1000.0)  # fmt: skip
    async with asyncio.timeout(GUARD):
        got = _events(await collect(perf, request))
    assert by_index(got) == by_index(reference)
    assert stall.stalled_closed and up.open == 0
    assert resumes(perf) == {"resumed": 2.0}
    assert perf.tracker.stats("b").failures == 1  # a stall, not the total limit's cut


class Late:
    """On node b, the continuation ``late`` picks holds its first chunk back for ``delay``
    real seconds (a long prefill: slow to start, yet healthy), then streams; the others
    stream at once and end. Node a calls ``at_cut`` just before it breaks (at ``cut``)."""

    def __init__(
        self,
        up: SimStreams,
        late: Callable[[dict[str, Any]], bool],
        delay: float,
        cut: int,
        at_cut: Callable[[], None] = lambda: None,
    ) -> None:
        self.original = up.stream
        self.late = late
        self.delay = delay
        self.cut = cut
        self.at_cut = at_cut
        self.started = False
        up.cut["a"] = cut
        up.stream = self.stream  # type: ignore[method-assign]

    async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        late = node.id == "b" and self.late(dict(request.payload))
        async with aclosing(self.original(node, request)) as frames:
            i = 0
            async for frame in frames:
                if late and i == 0:  # (the upstream's own latency: real time, as its limits)
                    await asyncio.sleep(self.delay)
                    self.started = True
                if node.id == "a" and i == self.cut:
                    self.at_cut()
                yield frame
                i += 1


async def test_a_continuation_slow_to_start_is_not_cut_by_the_request_deadline(
    clock: ManualClock,
) -> None:
    # a breaks with LIMIT seconds left of the request's deadline: the merged stream starts
    # within them (its first chunk reaches the client), so it is the client's from then on; a
    # continuation that takes longer for its first chunk, within the first-token timeout, is
    # healthy: neither cut by the deadline nor counted against its node
    request = chat(timeout=100.0, n=2, **USAGE)
    reference = _events(await collect(orchestrator(clock, SimStreams(), {"x": True}), request))
    up = SimStreams()
    late = Late(up, _chat_choice_1, 2 * LIMIT, 7, lambda: clock.advance(100.0 - LIMIT))
    perf = orchestrator(clock, up, {"a": True, "b": True})
    async with asyncio.timeout(GUARD):
        got = _events(await collect(perf, request))
    assert late.started and by_index(got) == by_index(reference)
    one_stream(got, reference)
    assert resumes(perf) == {"resumed": 1.0}
    assert perf.tracker.stats("b").failures == 0 and up.open == 0


async def test_a_continuation_slow_to_start_has_the_first_token_timeout_once_the_others_ended(
    clock: ManualClock,
) -> None:
    # the first-token timeout is longer than the idle timeout (a long prompt's prefill): a
    # continuation still before its first chunk when the others have ended is held to the
    # first, not cut when the merged stream has been idle for the second
    request = chat(n=2, **USAGE)
    reference = _events(await collect(orchestrator(clock, SimStreams(), {"x": True}), request))
    up = SimStreams()
    late = Late(up, _chat_choice_1, 2 * LIMIT, 7)
    perf = orchestrator(clock, up, {"a": True, "b": True}, stream_idle_timeout=LIMIT,
                        stream_first_token_timeout=GUARD)  # fmt: skip
    async with asyncio.timeout(GUARD):
        got = _events(await collect(perf, request))
    assert late.started and by_index(got) == by_index(reference)
    one_stream(got, reference)
    assert resumes(perf) == {"resumed": 1.0}
    assert perf.tracker.stats("b").failures == 0 and up.open == 0


async def test_a_continuation_waits_for_its_first_chunk_at_most_its_node_s_timeout(
    clock: ManualClock,
) -> None:
    request = chat(n=2, **USAGE)
    up = SimStreams()
    up.cut["a"] = 7
    Stall(up, _chat_choice_1, 0)
    nodes = [NodeSpec(n, models={"m"}, resume="continue_final_message",
                      timeout=LIMIT if n == "b" else None) for n in "abc"]  # fmt: skip
    perf = PerformanceOrchestrator(
        load_balancing="round_robin", nodes=nodes, upstream=up, clock=clock,
        settings=OrchestratorSettings(hedge=False, stream_first_token_timeout=GUARD),
    )  # fmt: skip
    async with asyncio.timeout(GUARD):  # (cut at b's timeout, not the first-token timeout)
        await collect(perf, request)
    assert resumes(perf) == {"resumed": 2.0}
    assert perf.tracker.stats("b").failures == 1 and up.open == 0
