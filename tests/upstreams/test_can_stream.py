"""``can_stream``: the Protocol check a streamed request makes, remembered per class."""

from __future__ import annotations

from collections.abc import AsyncIterator

from prsm.performance.routing._node import NodeSpec
from prsm.performance.types import AIRequest, Response
from prsm.performance.upstreams import CallableUpstream, StreamingUpstream
from prsm.performance.upstreams._base import _STREAMING, can_stream


class _Plain:
    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        return Response(content={"node": node.id})


class _Streams(_Plain):
    async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        yield b"data: x\n\n"


def test_same_answer_as_isinstance_and_remembered_per_class() -> None:
    for upstream in (_Plain(), _Streams(), CallableUpstream(lambda node, request: "ok")):
        expected = isinstance(upstream, StreamingUpstream)
        assert can_stream(upstream) is expected
        assert _STREAMING[type(upstream)] is expected
        assert can_stream(upstream) is expected  # the second answer comes from the cache
    assert can_stream(_Streams()) and not can_stream(_Plain())
