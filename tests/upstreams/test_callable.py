from __future__ import annotations

import pytest

from prsm.performance import AIRequest, CallableUpstream, NodeSpec, Response, UpstreamError


async def test_sync_and_async_handlers_and_per_node() -> None:
    async def a(node: NodeSpec, req: AIRequest) -> dict[str, str]:
        return {"from": node.id}

    up = CallableUpstream(a, per_node={"b": lambda node, req: Response(content="raw", tokens=3)})
    r1 = await up.execute(NodeSpec(id="a"), AIRequest())
    assert r1.content == {"from": "a"}
    r2 = await up.execute(NodeSpec(id="b"), AIRequest())
    assert r2.content == "raw" and r2.tokens == 3


async def test_exceptions_are_wrapped_with_the_cause() -> None:
    def boom(node: NodeSpec, req: AIRequest) -> None:
        raise RuntimeError("kaput")

    up = CallableUpstream(boom)
    with pytest.raises(UpstreamError, match="kaput") as info:
        await up.execute(NodeSpec(id="n"), AIRequest())
    assert info.value.node_id == "n" and info.value.retryable
    assert isinstance(info.value.__cause__, RuntimeError)


def test_needs_a_handler() -> None:
    with pytest.raises(ValueError, match="handler"):
        CallableUpstream()
