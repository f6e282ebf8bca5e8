"""Mid-stream resume of a stream of several choices (``n > 1``, a completion's list of
prompts) and of a completion with ``echo``: each unfinished choice continued on its own, the
client seeing, for each index, the simulator's whole answer (manual clock; the in-process
double of ``test_resume``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.errors import ConfigError, UpstreamError
from prsm.performance.orchestrator import OrchestratorSettings
from prsm.performance.routing import NodeSpec
from prsm.performance.types import AIRequest
from tests.orchestrator.test_resume import (
    ASK,
    SimStreams,
    chat,
    collect,
    completion,
    events,
    orchestrator,
    resumes,
)

USAGE = {"stream_options": {"include_usage": True}}


def by_index(evs: list[Any]) -> dict[int, str]:
    """Each choice's text, by index (a chat's content, a completion's text)."""
    out: dict[int, str] = {}
    for e in evs:
        for c in e["choices"] if e else ():
            text = c["delta"].get("content", "") if "delta" in c else c["text"]
            out[c["index"]] = out.get(c["index"], "") + text
    return out


def answer(choice: int, tokens: int = 12) -> str:
    mark = f"c{choice}." if choice else ""
    return "".join(f"{' ' if i else ''}{mark}tok{i}" for i in range(tokens))


async def run(
    clock: ManualClock, request: AIRequest, cut: int, **more_cuts: int
) -> tuple[list[Any], list[Any], SimStreams, Any]:
    """The uncut answer, and the answer cut on node a after ``cut`` events (resumed on b, c)."""
    reference = events(await collect(orchestrator(clock, SimStreams(), {"x": True}), request))
    up = SimStreams()
    up.cut["a"] = cut
    up.cut.update(more_cuts)
    perf = orchestrator(clock, up, {"a": True, "b": True, "c": True})
    got = events(await collect(perf, request))
    return reference, got, up, perf


def one_stream(got: list[Any], reference: list[Any]) -> None:
    assert {e["id"] for e in got if e} == {reference[0]["id"]}  # one stream, one id
    assert {e["model"] for e in got if e} == {"m"}
    assert got[-1] is None and got.count(None) == 1  # one [DONE], at the end


async def test_two_chat_choices_cut_midway_each_go_on_from_their_own_text(
    clock: ManualClock,
) -> None:
    request = chat(n=2, **USAGE)
    reference, got, up, perf = await run(clock, request, 7)  # choice 0: 4 tokens, 1: 3
    assert by_index(got) == by_index(reference) == {0: answer(0), 1: answer(1)}
    one_stream(got, reference)
    roles = [c["index"] for e in got if e for c in e["choices"] if "role" in c["delta"]]
    assert sorted(roles) == [0, 1]  # each choice's role once
    assert got[-2]["usage"] == reference[-2]["usage"]  # one usage, as if never cut
    conts = sorted((b["messages"][-1]["content"], b) for n, b in up.bodies[1:])
    assert [n for n, _ in up.bodies[1:]] == ["b", "b"]
    (p0, b0), (p1, b1) = conts[1], conts[0]  # ("c1.…" sorts before "tok…")
    assert p0 == answer(0, 4) and p1 == answer(1, 3)
    assert b0["messages"][:-1] == ASK and b0["continue_final_message"] is True
    assert (b0["n"], b1["n"], b0["max_tokens"], b1["max_tokens"]) == (1, 1, 12 - 4, 12 - 3)
    assert resumes(perf) == {"resumed": 1.0}
    assert all(e.in_flight == 0 for e in perf.registry.entries())


async def test_a_choice_that_had_ended_is_not_asked_again(clock: ManualClock) -> None:
    request = chat(n=2, **USAGE)
    # 23 events: every token of both but choice 1's last; choice 0's finish_reason sent
    reference, got, up, perf = await run(clock, request, 23)
    assert by_index(got) == by_index(reference)
    one_stream(got, reference)
    assert got[-2]["usage"] == reference[-2]["usage"]
    assert len(up.bodies) == 2  # the first request and one continuation: choice 1's
    cont = up.bodies[1][1]["messages"][-1]["content"]
    assert cont == answer(1, 11)
    assert resumes(perf) == {"resumed": 1.0}


async def test_several_prompts_each_choice_goes_on_from_its_own_prompt(
    clock: ManualClock,
) -> None:
    request = completion(prompt=["say hello ", "say bye "], n=2, **USAGE)
    reference, got, up, perf = await run(clock, request, 10)  # 3, 3, 2, 2 tokens
    assert by_index(got) == by_index(reference) == {i: answer(i) for i in range(4)}
    one_stream(got, reference)
    assert got[-2]["usage"] == reference[-2]["usage"]
    prompts = sorted(b["prompt"] for _, b in up.bodies[1:])
    assert prompts == sorted([  # choice i * n + j answers prompt i, as OpenAI numbers them
        "say hello " + answer(0, 3), "say hello " + answer(1, 3),
        "say bye " + answer(2, 2), "say bye " + answer(3, 2)])  # fmt: skip
    assert all(b["n"] == 1 for _, b in up.bodies[1:])
    assert resumes(perf) == {"resumed": 1.0}


async def test_an_echoed_completion_goes_on_without_a_second_echo(clock: ManualClock) -> None:
    request = completion(echo=True, **USAGE)
    reference, got, up, perf = await run(clock, request, 5)
    assert by_index(got) == by_index(reference) == {0: "say hello " + answer(0)}
    one_stream(got, reference)
    assert got[-2]["usage"] == reference[-2]["usage"]
    cont = up.bodies[1][1]
    assert cont["echo"] is False and cont["prompt"] == "say hello " + answer(0, 5)
    assert cont["max_tokens"] == 12 - 5
    assert resumes(perf) == {"resumed": 1.0}


async def test_echo_with_several_prompts_and_choices(clock: ManualClock) -> None:
    request = completion(prompt=["say hello ", "say bye "], n=2, echo=True)
    reference, got, up, perf = await run(clock, request, 9)
    heads = ["say hello "] * 2 + ["say bye "] * 2
    assert by_index(got) == by_index(reference) == {i: heads[i] + answer(i) for i in range(4)}
    assert all(b["echo"] is False for _, b in up.bodies[1:])
    assert resumes(perf) == {"resumed": 1.0}


async def test_a_merged_continuation_that_breaks_goes_on_again(clock: ManualClock) -> None:
    request = chat(n=2, **USAGE)
    # b cuts each continuation after 3 events: the merged stream breaks, c takes it over
    reference, got, up, perf = await run(clock, request, 7, b=3)
    assert by_index(got) == by_index(reference)
    one_stream(got, reference)
    assert got[-2]["usage"] == reference[-2]["usage"]
    assert [n for n, _ in up.bodies] == ["a", "b", "b", "c", "c"]
    assert resumes(perf) == {"resumed": 2.0}
    assert all(e.in_flight == 0 for e in perf.registry.entries())


async def test_several_choices_past_the_resume_limit_end_with_the_error(
    clock: ManualClock,
) -> None:
    up = SimStreams()
    for n in "ab":
        up.cut[n] = 3
    perf = orchestrator(clock, up, {"a": True, "b": True}, stream_max_resumes=1)
    with pytest.raises(UpstreamError):
        await collect(perf, chat(n=2))
    assert resumes(perf) == {"resumed": 1.0, "exhausted": 1.0}


async def test_a_client_that_goes_away_mid_way_closes_every_continuation(
    clock: ManualClock,
) -> None:
    up = SimStreams()
    up.cut["a"] = 7
    perf = orchestrator(clock, up, {"a": True, "b": True})
    agen = perf.handle_stream(chat(n=2))
    seen = 0
    async for _ in agen:  # until the merged continuations have sent something
        seen += 1
        if len(up.bodies) == 3:
            break
    await agen.aclose()
    for _ in range(3):  # the continuations' steps, cancelled, end on the loop's next turns
        await asyncio.sleep(0)
    assert up.open == 0  # every continuation closed (its connection too)
    assert all(e.in_flight == 0 for e in perf.registry.entries())


@pytest.mark.parametrize("bad", [b"data: <html>bad gateway</html>\n\n", b"data: {oops}\n\n"])
async def test_a_continuation_that_sends_a_bad_event_is_taken_over_again(
    clock: ManualClock, bad: bytes
) -> None:
    request = chat(n=2)
    reference = events(await collect(orchestrator(clock, SimStreams(), {"x": True}), request))
    up = SimStreams()
    up.cut["a"] = 7
    original = up.stream

    async def garbling(node: NodeSpec, req: AIRequest) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in original(node, req):
            if node.id == "b" and sent == 2:
                yield bad  # (a chunk of its own: the events before it go out)
            yield chunk
            sent += 1

    up.stream = garbling  # type: ignore[method-assign]
    perf = orchestrator(clock, up, {"a": True, "b": True, "c": True})
    raw = await collect(perf, request)
    assert b"html" not in raw and b"oops" not in raw
    assert by_index(events(raw)) == by_index(reference)
    assert [n for n, _ in up.bodies] == ["a", "b", "b", "c", "c"]
    assert resumes(perf) == {"resumed": 2.0} and up.open == 0


async def test_an_echo_sent_alone_is_not_counted_as_a_token(clock: ManualClock) -> None:
    request = completion(echo=True, **USAGE)
    reference = events(await collect(orchestrator(clock, SimStreams(), {"x": True}), request))
    up = SimStreams()
    up.cut["a"] = 5
    original = up.stream

    async def echo_apart(node: NodeSpec, req: AIRequest) -> AsyncIterator[bytes]:
        async for chunk in original(node, req):
            if node.id == "a" and b'"text":"say hello tok0"' in chunk:
                obj = orjson.loads(chunk[6:])
                obj["choices"][0]["text"] = "say hello "  # the echo in an event of its own
                yield b"data: " + orjson.dumps(obj) + b"\n\n"
                obj["choices"][0]["text"] = "tok0"
                yield b"data: " + orjson.dumps(obj) + b"\n\n"
            else:
                yield chunk

    up.stream = echo_apart  # type: ignore[method-assign]
    perf = orchestrator(clock, up, {"a": True, "b": True})
    got = events(await collect(perf, request))
    assert by_index(got) == by_index(reference)
    assert got[-2]["usage"] == reference[-2]["usage"]
    assert up.bodies[1][1]["max_tokens"] == 12 - 5


async def test_no_usage_when_a_prompt_had_every_choice_ended_before_the_break(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    request = completion(prompt=["say hello ", "say bye "], **USAGE)
    # 23 events: every token of both but choice 1's last; choice 0 (prompt 0) had ended
    reference, got, up, perf = await run(clock, request, 23)
    assert by_index(got) == by_index(reference)
    one_stream(got, reference)
    assert [b["prompt"] for _, b in up.bodies[1:]] == ["say bye " + answer(1, 11)]
    # prompt 0's tokens are known nowhere: no usage rather than a wrong one (it was 2 of 4)
    assert reference[-2]["usage"]["prompt_tokens"] == 4
    assert not any(e and e.get("usage") for e in got)
    assert "1 of its 2 prompts had every choice ended" in caplog.text
    assert resumes(perf) == {"resumed": 1.0}


async def test_more_unfinished_choices_than_the_limit_are_not_resumed(clock: ManualClock) -> None:
    up = SimStreams()
    up.cut["a"] = 5
    perf = orchestrator(clock, up, {"a": True, "b": True}, stream_max_continuations=2)
    request = completion(prompt=["say hello ", "say bye "], n=2)  # 4 choices: 4 requests
    with pytest.raises(UpstreamError):
        await collect(perf, request)
    assert [n for n, _ in up.bodies] == ["a"]  # none opened on b
    assert resumes(perf) == {"unsupported": 1.0}
    with pytest.raises(ConfigError) as err:
        OrchestratorSettings(stream_max_continuations=0)
    assert err.value.field == "stream_max_continuations"


async def test_an_echoed_choice_that_sent_nothing_before_the_break_is_echoed_once(
    clock: ManualClock,
) -> None:
    request = completion(prompt=["say hello ", "say bye "], echo=True, **USAGE)
    # 1 event: choice 0's echo and first token; choice 1 (prompt 1) had sent nothing
    reference, got, up, perf = await run(clock, request, 1, b=4)  # and b breaks again
    texts = by_index(got)
    assert texts[0] == by_index(reference)[0] == "say hello " + answer(0)
    # asked afresh (the simulator's first choice of a one-choice request): its echo once
    assert texts[1] == "say bye " + answer(0)
    one_stream(got, reference)
    first = {b["prompt"]: b["echo"] for _, b in up.bodies[1:3]}
    assert first == {"say hello " + answer(0, 1): False, "say bye ": True}
    assert resumes(perf) == {"resumed": 2.0}


async def test_a_choice_ended_before_the_break_with_its_echo_alone_counts_its_tokens_only(
    clock: ManualClock,
) -> None:
    request = completion(n=2, echo=True, **USAGE)
    reference = events(await collect(orchestrator(clock, SimStreams(), {"x": True}), request))
    up = SimStreams()
    up.cut["a"] = 23  # choice 0 had ended; choice 1 had 11 tokens
    original = up.stream

    async def echo_apart(node: NodeSpec, req: AIRequest) -> AsyncIterator[bytes]:
        async for chunk in original(node, req):
            if node.id == "a" and b'"text":"say hello ' in chunk:  # each choice's echo alone
                obj = orjson.loads(chunk[6:])
                token = obj["choices"][0]["text"][len("say hello ") :]
                obj["choices"][0]["text"] = "say hello "
                echo = b"data: " + orjson.dumps(obj) + b"\n\n"
                obj["choices"][0]["text"] = token
                yield echo + b"data: " + orjson.dumps(obj) + b"\n\n"
            else:
                yield chunk

    up.stream = echo_apart  # type: ignore[method-assign]
    got = events(await collect(orchestrator(clock, up, {"a": True, "b": True}), request))
    assert by_index(got) == by_index(reference)
    assert [e["usage"] for e in got if e and e.get("usage")] == [reference[-2]["usage"]]
