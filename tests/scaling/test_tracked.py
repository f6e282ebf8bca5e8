"""The request path's hooks into the scaler's load tracker (``TrackedUpstream``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.errors import UpstreamError, UpstreamUnavailableError
from prsm.performance.routing._node import NodeSpec
from prsm.performance.scaling import LoadTracker, TrackedUpstream
from prsm.performance.types import AIRequest, RequestKind, Response

NODE = NodeSpec("w0", models={"m"})
REQ = AIRequest(kind=RequestKind.EMBEDDING, payload={"model": "m", "input": "x"})


class Steps:
    """An upstream whose calls take ``seconds`` on a manual clock, or raise ``error``."""

    def __init__(self, clock: ManualClock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds
        self.error: BaseException | None = None
        self.closed = False

    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        self.clock.advance(self.seconds)
        if self.error is not None:
            raise self.error
        return Response(content={"ok": True})

    async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        for i in range(4):  # four chunks, ``seconds`` apart
            self.clock.advance(self.seconds)
            if self.error is not None and i == 2:
                raise self.error
            yield b"data: {}\n\n"

    async def aclose(self) -> None:
        self.closed = True


async def test_each_call_is_an_arrival_served_and_finished() -> None:
    clock = ManualClock()
    tracker = LoadTracker(clock=clock)
    inner = Steps(clock, 0.25)
    up = TrackedUpstream(inner, tracker, clock=clock)
    for _ in range(3):
        assert (await up.execute(NODE, REQ)).content == {"ok": True}
    window = tracker.take_window()
    assert window.arrivals == 3 and window.error_rate == 0.0
    assert tracker.service_time == pytest.approx(0.25)
    assert tracker.in_flight == tracker.queued == 0


async def test_replica_failures_count_and_a_clients_bad_request_does_not() -> None:
    clock = ManualClock()
    tracker = LoadTracker(clock=clock)
    inner = Steps(clock, 0.1)
    up = TrackedUpstream(inner, tracker, clock=clock)
    inner.error = UpstreamUnavailableError("w0", "worker restarting")
    with pytest.raises(UpstreamUnavailableError):
        await up.execute(NODE, REQ)
    inner.error = UpstreamError("w0", "not an embedding request", status=400, retryable=False)
    with pytest.raises(UpstreamError):
        await up.execute(NODE, REQ)
    window = tracker.take_window()
    assert window.arrivals == 2 and window.error_rate == pytest.approx(0.5)
    assert tracker.in_flight == 0
    await up.aclose()
    assert inner.closed


async def test_a_stream_is_in_service_from_its_call_to_its_end() -> None:
    clock = ManualClock()
    tracker = LoadTracker(clock=clock)
    inner = Steps(clock, 0.5)
    up = TrackedUpstream(inner, tracker, clock=clock)
    chunks = up.stream(NODE, REQ)
    assert await chunks.__anext__() and tracker.in_flight == 1  # held while it streams
    assert len([c async for c in chunks]) == 3 and tracker.in_flight == 0
    assert tracker.service_time == pytest.approx(2.0)  # the whole stream
    inner.error = UpstreamUnavailableError("w0", "connection reset mid-stream")
    with pytest.raises(UpstreamUnavailableError):
        _ = [c async for c in up.stream(NODE, REQ)]
    left = up.stream(NODE, REQ)  # a consumer that stops early: it left service, unfinished
    await left.__anext__()
    await left.aclose()
    window = tracker.take_window()
    assert window.arrivals == 3 and window.error_rate == pytest.approx(2 / 3)
    assert tracker.in_flight == 0
