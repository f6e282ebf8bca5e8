"""Mid-stream resume: a chat stream whose node breaks after content reached the client goes on
on another node that declares ``resume``, the client seeing one whole stream (manual clock,
an in-process double that streams the upstream simulator's own deterministic events)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from prsm.performance import OrchestratorSettings, PerformanceOrchestrator
from prsm.performance.clock import ManualClock
from prsm.performance.errors import ConfigError, UpstreamError, UpstreamUnavailableError
from prsm.performance.fakes import SimSettings
from prsm.performance.fakes._server import _frames
from prsm.performance.orchestrator._tape import Tape, merge_usage
from prsm.performance.resilience import CircuitState
from prsm.performance.routing import NodeSpec
from prsm.performance.routing._node import node_from_mapping
from prsm.performance.types import AIRequest, JSONBody, RequestKind
from prsm.performance.upstreams import CallableUpstream

ASK = [{"role": "user", "content": "say hello"}]


def chat(timeout: float | None = None, **extra: Any) -> AIRequest:
    body = {"model": "m", "messages": ASK, "stream": True, "max_tokens": 12, **extra}
    return AIRequest(model="m", payload=JSONBody(orjson.dumps(body)), stream=True, timeout=timeout)


def completion(**extra: Any) -> AIRequest:
    body = {"model": "m", "prompt": "say hello ", "stream": True, "max_tokens": 12, **extra}
    payload = JSONBody(orjson.dumps(body))
    return AIRequest(model="m", payload=payload, stream=True, kind=RequestKind.COMPLETION)


class SimStreams(CallableUpstream):
    """Streams what the upstream simulator named after the node would; a node in ``cut`` sends
    that many whole events and half of the next, then its connection drops; one in ``garble``
    sends that many and then a malformed event."""

    def __init__(self) -> None:
        super().__init__(lambda node, request: "x")
        self.cut: dict[str, int] = {}
        self.garble: dict[str, int] = {}
        self.stall: dict[str, int] = {}
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self.open = 0  # streams begun and not yet ended or closed

    async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        body = dict(request.payload)
        self.bodies.append((node.id, body))
        frames = _frames(request.kind.value, SimSettings(name="sim"), body,
                         request_no=len(self.bodies), now=7)  # fmt: skip
        self.open += 1
        try:
            for i, frame in enumerate(frames):
                if i == self.stall.get(node.id):
                    await asyncio.Event().wait()  # stalls: never another chunk
                if i == self.garble.get(node.id):
                    yield b"data: <html>bad gateway</html>\n\n"
                    return
                if i == self.cut.get(node.id):
                    yield frame[: len(frame) // 2]  # half an event, then the connection drops
                    raise UpstreamUnavailableError(node.id, "connection reset mid-stream")
                yield frame
        finally:
            self.open -= 1


def orchestrator(
    clock: ManualClock, up: SimStreams, resume: dict[str, bool], **settings: Any
) -> PerformanceOrchestrator:
    nodes = [
        NodeSpec(n, models={"m"}, resume="continue_final_message" if r else None)
        for n, r in resume.items()
    ]
    return PerformanceOrchestrator(
        load_balancing="round_robin", nodes=nodes, upstream=up, clock=clock,
        settings=OrchestratorSettings(hedge=False, **settings),
    )  # fmt: skip


async def collect(perf: PerformanceOrchestrator, request: AIRequest) -> bytes:
    return b"".join([c async for c in perf.handle_stream(request)])


def events(raw: bytes) -> list[Any]:
    out: list[Any] = []
    for ev in raw.split(b"\n\n"):
        if ev:
            assert ev.startswith(b"data: "), ev  # every event whole: never half of one
            data = ev[6:]
            out.append(None if data == b"[DONE]" else orjson.loads(data))
    return out


def text_of(evs: list[Any]) -> str:
    return "".join(
        c["delta"].get("content", "") for e in evs if e for c in e["choices"] if "delta" in c
    )


def resumes(perf: PerformanceOrchestrator) -> dict[str, float]:
    family = perf.metrics.plain(
        "counter", "orchestrator_stream_resumes", "", ["outcome"]
    )  # the family the orchestrator counted into
    return {labels[0]: child.value for labels, child in family.children.items()}


async def whole(clock: ManualClock, request: AIRequest) -> list[Any]:
    up = SimStreams()
    return events(await collect(orchestrator(clock, up, {"x": True}), request))


async def test_a_stream_cut_midway_goes_on_elsewhere_with_nothing_lost_or_doubled(
    clock: ManualClock,
) -> None:
    request = chat(stream_options={"include_usage": True})
    reference = await whole(clock, request)
    up = SimStreams()
    up.cut["a"] = 5
    perf = orchestrator(clock, up, {"a": True, "b": True})
    got = events(await collect(perf, request))
    assert text_of(got) == text_of(reference) == "tok0" + "".join(f" tok{i}" for i in range(1, 12))
    assert {e["id"] for e in got if e} == {reference[0]["id"]}  # one stream, one id
    assert sum("role" in e["choices"][0]["delta"] for e in got if e and e["choices"]) == 1
    assert got[-1] is None and got.count(None) == 1  # one [DONE], at the end
    assert got[-2]["usage"] == reference[-2]["usage"]  # usage merged: as if never cut
    node, cont = up.bodies[1]
    assert node == "b" and cont["continue_final_message"] is True
    assert cont["add_generation_prompt"] is False
    assert cont["messages"][:-1] == ASK and cont["messages"][-1]["role"] == "assistant"
    assert cont["max_tokens"] == 12 - 5  # what was streamed is not asked for twice
    assert resumes(perf) == {"resumed": 1.0}
    assert perf.tracker.stats("a").failures == 1  # the cut counts against its node
    assert all(e.in_flight == 0 for e in perf.registry.entries())


async def test_a_completion_stream_cut_midway_goes_on_elsewhere_from_its_prompt_and_text(
    clock: ManualClock,
) -> None:
    request = completion(stream_options={"include_usage": True})
    reference = await whole(clock, request)
    up = SimStreams()
    up.cut["a"] = 5
    # no node declares the chat extension: any node continues a prompt
    perf = orchestrator(clock, up, {"a": False, "b": False})
    got = events(await collect(perf, request))

    def text(evs: list[Any]) -> str:
        return "".join(c.get("text", "") for e in evs if e for c in e["choices"])

    assert text(got) == text(reference) == "tok0" + "".join(f" tok{i}" for i in range(1, 12))
    assert {e["id"] for e in got if e} == {reference[0]["id"]}  # one stream, one id
    assert got[-1] is None and got.count(None) == 1
    assert got[-2]["usage"] == reference[-2]["usage"]  # usage merged: as if never cut
    node, cont = up.bodies[1]
    assert node == "b" and cont["prompt"] == "say hello tok0 tok1 tok2 tok3 tok4"
    assert cont["max_tokens"] == 12 - 5 and "continue_final_message" not in cont
    assert resumes(perf) == {"resumed": 1.0}


TOOL = b'"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}],'


@pytest.mark.parametrize(
    ("ask", "change", "why"),
    [(completion(prompt=[[1, 2], [3]]), None, "neither a string nor a list"),
     (chat(), (b'"delta":{', TOOL), "tool calls"),
     (completion(), (b'"index":0', b'"index":1'), "a choice index the request did not")],
)  # fmt: skip
async def test_a_stream_that_cannot_be_continued_ends_with_the_error(
    clock: ManualClock, ask: AIRequest, change: tuple[bytes, bytes] | None, why: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    up = SimStreams()
    up.cut["a"] = 3
    perf = orchestrator(clock, up, {"a": True, "b": True})
    if change is not None:  # what the simulator does not send: a tool call, an extra choice
        original = up.stream

        async def changed(node: NodeSpec, req: AIRequest) -> AsyncIterator[bytes]:
            async for chunk in original(node, req):
                yield chunk.replace(*change)

        up.stream = changed  # type: ignore[method-assign]
    with pytest.raises(UpstreamError):
        await collect(perf, ask)
    assert resumes(perf) == {"unsupported": 1.0} and len(up.bodies) == 1
    assert any(why in m for m in caplog.messages)


async def test_a_malformed_event_never_reaches_the_client_and_the_stream_goes_on(
    clock: ManualClock,
) -> None:
    reference = await whole(clock, chat())
    up = SimStreams()
    up.garble["a"] = 3
    perf = orchestrator(clock, up, {"a": True, "b": True})
    raw = await collect(perf, chat())
    assert b"<html>" not in raw
    assert text_of(events(raw)) == text_of(reference)
    assert resumes(perf) == {"resumed": 1.0}


async def test_a_stalled_stream_goes_on_elsewhere(clock: ManualClock) -> None:
    reference = await whole(clock, chat())
    up = SimStreams()
    up.stall["a"] = 6
    perf = orchestrator(clock, up, {"a": True, "b": True}, stream_idle_timeout=1e-6)
    got = events(await collect(perf, chat()))
    assert text_of(got) == text_of(reference)
    assert resumes(perf) == {"resumed": 1.0}


async def test_only_nodes_that_declare_resume_take_a_stream_over(clock: ManualClock) -> None:
    up = SimStreams()
    up.cut["a"] = 4
    perf = orchestrator(clock, up, {"a": True, "b": False, "c": True})
    await collect(perf, chat())
    assert [n for n, _ in up.bodies] == ["a", "c"]


async def test_with_no_node_to_resume_the_stream_ends_with_the_error_after_whole_events(
    clock: ManualClock,
) -> None:
    up = SimStreams()
    up.cut["a"] = 4
    perf = orchestrator(clock, up, {"a": True, "b": False})
    got: list[bytes] = []
    with pytest.raises(UpstreamError, match="mid-stream"):
        async for chunk in perf.handle_stream(chat()):
            got.append(chunk)
    assert len(events(b"".join(got))) == 4  # whole events only: the half one held back
    assert resumes(perf) == {"no_node": 1.0}


async def test_resumes_are_bounded(clock: ManualClock) -> None:
    up = SimStreams()
    for n in "abcd":
        up.cut[n] = 2
    perf = orchestrator(clock, up, {n: True for n in "abcd"}, stream_max_resumes=2)
    with pytest.raises(UpstreamError):
        await collect(perf, chat())
    assert len(up.bodies) == 3  # the first node and two resumes
    assert resumes(perf) == {"resumed": 2.0, "exhausted": 1.0}


async def test_no_resume_past_the_requests_deadline(clock: ManualClock) -> None:
    up = SimStreams()
    up.cut["a"] = 3
    perf = orchestrator(clock, up, {"a": True, "b": True})
    agen = perf.handle_stream(chat(timeout=5.0))
    assert await agen.__anext__()
    clock.advance(6.0)  # the stream ran past the request's deadline before it broke
    with pytest.raises(UpstreamError):
        async for _ in agen:
            pass
    assert resumes(perf) == {"no_budget": 1.0}


async def test_an_answer_that_had_ended_is_closed_cleanly(clock: ManualClock) -> None:
    up = SimStreams()
    up.cut["a"] = 12  # every token and its finish_reason sent; cut before [DONE]
    perf = orchestrator(clock, up, {"a": True, "b": True})
    got = events(await collect(perf, chat()))
    assert got[-1] is None and len(up.bodies) == 1
    assert resumes(perf) == {"finished": 1.0}
    stats = perf.tracker.stats("a")
    assert (stats.requests, stats.failures) == (1, 1)  # the cut counted once, as a failure


async def test_resume_off_passes_the_stream_as_sent(clock: ManualClock) -> None:
    up = SimStreams()
    up.cut["a"] = 2
    perf = orchestrator(clock, up, {"a": True, "b": True}, stream_max_resumes=0)
    got: list[bytes] = []
    with pytest.raises(UpstreamError):
        async for chunk in perf.handle_stream(chat()):
            got.append(chunk)
    assert got[-1].startswith(b"data: {") and not got[-1].endswith(b"\n\n")  # as before


async def test_a_node_that_cuts_streams_opens_its_breaker_and_gets_no_more(
    clock: ManualClock,
) -> None:
    up = SimStreams()
    up.cut["a"] = 3
    perf = orchestrator(clock, up, {"a": True, "b": True})
    threshold = perf.breaker_settings.failure_threshold
    for _ in range(2 * threshold + 2):
        await collect(perf, chat())
    assert perf.breakers.get("a").state is CircuitState.OPEN
    starts = [n for n, body in up.bodies if "continue_final_message" not in body]
    assert starts.count("a") == threshold  # after that, streams start on b only


def test_tape_reframes_events_split_anywhere() -> None:
    tape = Tape()
    stream = b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'
    out = b"".join(tape.take(stream[i : i + 5], False) for i in range(0, len(stream), 5))
    assert out == stream and tape.tail == b""


def test_merged_usage_moves_the_prefix_back_to_the_completion() -> None:
    merged = merge_usage({"prompt_tokens": 15, "completion_tokens": 7, "total_tokens": 22}, 5)
    assert merged == {"prompt_tokens": 10, "completion_tokens": 12, "total_tokens": 22}


def test_the_resume_setting_is_validated_and_off_by_default() -> None:
    assert NodeSpec("n").resume is None
    assert node_from_mapping({"id": "n", "resume": "continue_final_message"}).resume
    with pytest.raises(ConfigError) as err:
        node_from_mapping({"id": "n", "resume": "yes"})
    assert err.value.field == "node[n].resume"
    with pytest.raises(ConfigError) as err:
        OrchestratorSettings(stream_max_resumes=-1)
    assert err.value.field == "stream_max_resumes"
