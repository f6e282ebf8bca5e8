"""DispatchUpstream: each node's calls go to the upstream its meta names, else the default."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from prsm.performance.errors import UpstreamError, UpstreamRejectedError
from prsm.performance.routing._node import NodeSpec
from prsm.performance.types import AIRequest, Response
from prsm.performance.upstreams import CallableUpstream
from prsm.performance.upstreams._dispatch import DispatchUpstream


class Streamer:
    def __init__(self) -> None:
        self.closed = 0

    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        return Response(content="streamer")

    async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        self.closed += 1


LOCAL = NodeSpec("w0", meta={"upstream": "local"})
REMOTE = NodeSpec("r0", url="http://127.0.0.1:1")
ODD = NodeSpec("x0", meta={"upstream": "ray"})


async def test_routes_by_node_meta_and_falls_back_to_default() -> None:
    local = CallableUpstream(lambda node, req: "local")
    remote = Streamer()
    up = DispatchUpstream({"local": local}, default=remote)
    assert (await up.execute(LOCAL, AIRequest())).content == "local"
    assert (await up.execute(REMOTE, AIRequest())).content == "streamer"
    chunks = [c async for c in up.stream(REMOTE, AIRequest(stream=True))]
    assert chunks == [b"data: 1\n\n", b"data: [DONE]\n\n"]


async def test_routes_can_be_added_later() -> None:
    up = DispatchUpstream({}, default=Streamer())
    up.add_route("local", CallableUpstream(lambda node, req: "late"))
    assert (await up.execute(LOCAL, AIRequest())).content == "late"


async def test_unknown_tag_or_no_default_is_the_nodes_fault() -> None:
    up = DispatchUpstream({"local": CallableUpstream(lambda n, r: 1)})
    with pytest.raises(UpstreamRejectedError, match="'ray'") as err:
        await up.execute(ODD, AIRequest())
    assert err.value.retryable is True  # a misconfigured node: counted, the next one tried
    with pytest.raises(UpstreamRejectedError, match="no default"):
        await up.execute(REMOTE, AIRequest())


async def test_streaming_needs_a_streaming_upstream() -> None:
    up = DispatchUpstream({"local": CallableUpstream(lambda n, r: 1)})
    with pytest.raises(UpstreamError, match="cannot stream"):
        async for _ in up.stream(LOCAL, AIRequest(stream=True)):
            pass


async def test_a_stream_fails_at_its_first_step_not_when_asked_for() -> None:
    """The orchestrator asks for the stream outside its retry handling and steps it inside:
    a node's misconfiguration must surface at the step, where it is counted and retried."""
    up = DispatchUpstream({"local": CallableUpstream(lambda n, r: 1)})
    for node, error in ((LOCAL, "cannot stream"), (ODD, "'ray'")):
        chunks = up.stream(node, AIRequest(stream=True))  # no error yet
        with pytest.raises(UpstreamError, match=error):
            await chunks.__anext__()


async def test_aclose_closes_each_upstream_once() -> None:
    shared = Streamer()
    up = DispatchUpstream({"a": shared, "b": shared}, default=shared)
    await up.aclose()
    assert shared.closed == 1


def test_needs_something_to_dispatch_to() -> None:
    with pytest.raises(ValueError, match="routes"):
        DispatchUpstream({})
