"""A recorded stream (the orchestrator's ``handle_stream`` wraps every stream in one): chunks
pass through unchanged, the stream is recorded once at its end or on a pipeline error, and its
source is closed however it stops."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from prsm.performance.errors import UpstreamError
from prsm.performance.monitoring import MetricsRegistry, RequestRecorder
from prsm.performance.monitoring._record import recorded_stream
from prsm.performance.types import AIRequest

EVENTS = [b'data: {"a": 1}\n\n', b'data: {"a": 2}\n\ndata: {"a": 3}\n\n', b"data: [DONE]\n\n"]


class Source:
    """Chunks as an async iterator that notes whether it was closed."""

    def __init__(self, chunks: list[bytes], fail: BaseException | None = None) -> None:
        self.chunks = list(chunks)
        self.fail = fail
        self.closed = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        if self.fail is not None:
            raise self.fail
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.closed += 1


class CacheSource(Source):
    """A cache's stream: it says which tier answered."""

    tier = "l1"


def count(r: RequestRecorder, outcome: str) -> float | None:
    labels = {"operation": "chat", "model": "m", "outcome": outcome, "error_type": ""}
    if outcome == "error":
        labels["error_type"] = "upstream"
    return r.registry.registry.get_sample_value("prsm_request_duration_seconds_count", labels)


def ttft(r: RequestRecorder) -> float | None:
    return r.registry.registry.get_sample_value(
        "prsm_time_to_first_token_seconds_count", {"operation": "chat", "model": "m"}
    )


async def test_chunks_pass_through_and_the_stream_is_recorded_at_its_end() -> None:
    r = RequestRecorder(MetricsRegistry())
    source = Source(EVENTS)
    got = [c async for c in recorded_stream(r, AIRequest(model="m", stream=True), source)]
    assert got == EVENTS
    assert source.closed == 1
    assert count(r, "ok") == 1.0
    assert ttft(r) == 1.0
    tokens = r.registry.registry.get_sample_value(
        "prsm_tokens_sum", {"operation": "chat", "model": "m", "node": "", "type": "output"}
    )
    assert tokens == 3.0  # the events before [DONE]
    tpot = r.registry.registry.get_sample_value(
        "prsm_time_per_output_token_seconds_count", {"operation": "chat", "model": "m"}
    )
    assert tpot == 1.0  # three output events: one time per output token


@pytest.mark.parametrize(("outputs", "samples"), [(1, 0.0), (2, 1.0)])
async def test_time_per_output_token_needs_two_output_events(outputs: int, samples: float) -> None:
    # one output event has no time between tokens; two give the first sample
    r = RequestRecorder(MetricsRegistry())
    chunks = [b'data: {"a": %d}\n\n' % i for i in range(outputs)] + [b"data: [DONE]\n\n"]
    assert [c async for c in recorded_stream(r, AIRequest(model="m", stream=True), Source(chunks))]
    tpot = r.registry.registry.get_sample_value(
        "prsm_time_per_output_token_seconds_count", {"operation": "chat", "model": "m"}
    )
    assert (tpot or 0.0) == samples  # (the series may exist, empty, or not yet)
    assert count(r, "ok") == 1.0


async def test_a_stream_the_cache_answered_is_recorded_as_a_hit_of_its_tier() -> None:
    r = RequestRecorder(MetricsRegistry())
    source = CacheSource(EVENTS)
    assert [c async for c in recorded_stream(r, AIRequest(model="m", stream=True), source)]
    assert count(r, "cache_hit") == 1.0
    assert count(r, "ok") is None
    assert r.registry.registry.get_sample_value("prsm_cache_lookups_total", {"result": "l1"}) == 1


async def test_a_pipeline_error_is_recorded_once_and_raised() -> None:
    r = RequestRecorder(MetricsRegistry())
    source = Source(EVENTS[:1], fail=UpstreamError("n", "cut"))
    stream = recorded_stream(r, AIRequest(model="m", stream=True), source)
    assert await stream.__anext__() == EVENTS[0]
    with pytest.raises(UpstreamError):
        await stream.__anext__()
    with pytest.raises(StopAsyncIteration):  # ended: nothing more, nothing recorded twice
        await stream.__anext__()
    await stream.aclose()
    assert source.closed == 1
    assert count(r, "error") == 1.0
    assert count(r, "ok") is None


async def test_closed_early_closes_its_source_and_records_nothing() -> None:
    r = RequestRecorder(MetricsRegistry())
    for taken in (0, 1):  # before its first chunk too (an async generator would not start)
        source = Source(EVENTS)
        stream = recorded_stream(r, AIRequest(model="m", stream=True), source)
        for _ in range(taken):
            await stream.__anext__()
        await stream.aclose()
        await stream.aclose()
        assert source.closed == 1
    assert count(r, "ok") is None


@pytest.mark.parametrize(
    "chunks",
    [
        [b'data: {"c": "data: x"}\n\ndata: {"c": "a\\ndata: y"}\n\n', b"data: [DONE]\n\n"],
        # one event split mid-line, then the rest: only line starts count
        [b'data: {"c": "da', b'ta: x"}\n\ndata: {"c": "data:"}\n\ndata: [DONE]\n\n'],
    ],
)
async def test_data_in_the_answers_text_is_not_an_event(chunks: list[bytes]) -> None:
    r = RequestRecorder(MetricsRegistry())
    assert [c async for c in recorded_stream(r, AIRequest(model="m", stream=True), Source(chunks))]
    tokens = r.registry.registry.get_sample_value(
        "prsm_tokens_sum", {"operation": "chat", "model": "m", "node": "", "type": "output"}
    )
    assert tokens == 2.0  # two events before [DONE], whatever their text says
