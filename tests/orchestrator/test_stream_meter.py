"""The streaming driver records its stream itself (no recording layer around it): the time to
the first chunk, the gaps, the output events less ``[DONE]`` and the outcome, once at the end;
a pipeline error once; a stream the caller closes early, never."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from prsm.performance.errors import UpstreamError
from prsm.performance.monitoring._record import RecordedStream
from prsm.performance.orchestrator import OrchestratorSettings
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.routing._node import NodeSpec
from prsm.performance.types import AIRequest, Response

EVENTS = [b'data: {"a": 1}\n\n', b'data: {"a": 2}\n\ndata: {"a": 3}\n\n', b"data: [DONE]\n\n"]


class Events:
    """A streaming upstream: ``EVENTS``, then (``fail``) the node's error."""

    def __init__(self, fail: bool = False, events: list[bytes] = EVENTS) -> None:
        self.fail = fail
        self.events = events

    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        return Response(content=node.id)

    async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        for chunk in self.events[: 1 if self.fail else None]:
            yield chunk
        if self.fail:
            raise UpstreamError(node.id, "cut", retryable=False)


def _perf(up: Events) -> PerformanceOrchestrator:
    settings = OrchestratorSettings(hedge=False, stream_max_resumes=0)
    return PerformanceOrchestrator(nodes=[NodeSpec("n0", models={"m"})], upstream=up,
                                   settings=settings)  # fmt: skip


def _sample(perf: PerformanceOrchestrator, name: str, **labels: str) -> float | None:
    return perf.metrics.registry.get_sample_value(name, labels)


def _count(perf: PerformanceOrchestrator, outcome: str) -> float | None:
    err = "upstream" if outcome == "error" else ""
    return _sample(perf, "prsm_request_duration_seconds_count", operation="chat", model="m",
                   outcome=outcome, error_type=err)  # fmt: skip


async def test_the_driver_records_the_stream_once_at_its_end() -> None:
    perf = _perf(Events())
    stream = perf.handle_stream(AIRequest(model="m", stream=True))
    assert not isinstance(stream, RecordedStream)  # no layer of its own
    assert [c async for c in stream] == EVENTS
    assert _count(perf, "ok") == 1.0
    chat = {"operation": "chat", "model": "m"}
    assert _sample(perf, "prsm_time_to_first_token_seconds_count", **chat) == 1.0
    assert _sample(perf, "prsm_inter_chunk_seconds_count", **chat) == 2.0
    tokens = _sample(perf, "prsm_tokens_sum", **chat, node="", type="output")
    assert tokens == 3.0  # the events before [DONE]
    assert _sample(perf, "prsm_time_per_output_token_seconds_count", **chat) == 1.0


async def test_a_stream_that_fails_is_recorded_once_as_an_error() -> None:
    perf = _perf(Events(fail=True))
    stream = perf.handle_stream(AIRequest(model="m", stream=True))
    assert await stream.__anext__() == EVENTS[0]
    with pytest.raises(UpstreamError):
        await stream.__anext__()
    assert _count(perf, "error") == 1.0
    assert _count(perf, "ok") is None


async def test_a_stream_closed_early_is_not_recorded() -> None:
    perf = _perf(Events())
    for taken in (0, 1):
        stream = perf.handle_stream(AIRequest(model="m", stream=True))
        for _ in range(taken):
            await stream.__anext__()
        await stream.aclose()  # type: ignore[attr-defined]
    assert _count(perf, "ok") is None
    assert _count(perf, "error") is None
    assert perf.registry.metrics("n0").in_flight == 0


async def test_a_cached_pipeline_keeps_the_recording_layer() -> None:
    settings = dataclasses.replace(OrchestratorSettings(hedge=False), caching_strategy="memory")
    perf = PerformanceOrchestrator(nodes=[NodeSpec("n0", models={"m"})], upstream=Events(),
                                   settings=settings)  # fmt: skip
    stream = perf.handle_stream(AIRequest(model="m", stream=True))
    assert isinstance(stream, RecordedStream)  # the cache's stream says which tier answered
    assert [c async for c in stream] == EVENTS
    assert _count(perf, "ok") == 1.0


async def test_data_in_the_answers_text_is_not_an_event() -> None:
    events = [b'data: {"c": "data: x"}\n\n', b'data: {"c": "a\\ndata: y"}\n\n', b"data: [DONE]\n\n"]
    perf = _perf(Events(events=events))
    assert [c async for c in perf.handle_stream(AIRequest(model="m", stream=True))] == events
    tokens = _sample(perf, "prsm_tokens_sum", operation="chat", model="m", node="", type="output")
    assert tokens == 2.0  # two events before [DONE], whatever their text says
