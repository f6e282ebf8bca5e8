"""The gateway side of the shared model pool, against a scripted pool on a Unix socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from prsm.performance.errors import UpstreamError, UpstreamUnavailableError
from prsm.performance.routing._node import NodeSpec
from prsm.performance.serve._pool_client import SharedPoolUpstream
from prsm.performance.types import AIRequest, JSONBody, RequestKind
from prsm.performance.workers._protocol import pack, read_message

NODE = {"id": "local-embed-0", "models": ["mini"], "capabilities": ["embeddings"],
        "max_concurrency": 8, "meta": {"upstream": "local", "worker": "local-embed-0"}}  # fmt: skip


class ScriptedPool:
    """Answers hello with one node; ``execute`` with what ``answer`` says (or hangs up)."""

    def __init__(self) -> None:
        self.answer: dict[str, Any] = {"ok": True, "body": b'{"object":"list"}', "tokens": 3}
        self.hang_up = False
        self.bodies: list[bytes] = []
        self.connections = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                message = await read_message(reader)
                if message["op"] == "hello":
                    writer.write(pack({"op": "nodes", "nodes": [NODE]}))
                    continue
                self.bodies.append(message["body"])
                if self.hang_up:
                    self.hang_up = False
                    return
                writer.write(pack({"id": message["id"], **self.answer}))
        except asyncio.IncompleteReadError:
            return
        finally:
            writer.close()


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[tuple[ScriptedPool, str]]:
    script = ScriptedPool()
    path = str(tmp_path / "pool.sock")
    server = await asyncio.start_unix_server(script.serve, path=path)
    yield script, path
    server.close()


def _request() -> AIRequest:
    body = orjson.dumps({"model": "mini", "input": ["hi"]})
    return AIRequest(model="mini", payload=JSONBody(body), kind=RequestKind.EMBEDDING)


async def test_nodes_answers_and_errors(pool: tuple[ScriptedPool, str]) -> None:
    script, path = pool
    client = SharedPoolUpstream(path, timeout=5)
    nodes = await client.connect()
    assert nodes == [NodeSpec(**NODE)]
    node = nodes[0]
    response = await client.execute(node, _request())
    assert response.raw == b'{"object":"list"}' and response.tokens == 3
    assert script.bodies == [orjson.dumps({"model": "mini", "input": ["hi"]})]

    script.answer = {"ok": False, "status": 400, "retryable": False, "message": "input: bad"}
    with pytest.raises(UpstreamError) as bad:
        await client.execute(node, _request())
    assert bad.value.status == 400 and not bad.value.retryable
    script.answer = {"ok": False, "status": 503, "retryable": True, "message": "restarting"}
    with pytest.raises(UpstreamUnavailableError):
        await client.execute(node, _request())

    # the pool hangs up mid-call: a retryable 503, and the next call reconnects
    script.answer = {"ok": True, "body": b"{}", "tokens": 0}
    script.hang_up = True
    with pytest.raises(UpstreamUnavailableError) as lost:
        await client.execute(node, _request())
    assert lost.value.retryable
    assert (await client.execute(node, _request())).raw == b"{}"
    assert script.connections == 2
    await client.aclose()


async def test_unreachable_pool_is_a_retryable_503(tmp_path: Path) -> None:
    client = SharedPoolUpstream(str(tmp_path / "nothing.sock"), timeout=5)
    with pytest.raises(UpstreamUnavailableError) as info:
        await client.execute(NodeSpec(**NODE), _request())
    assert info.value.status == 503 and info.value.retryable
    await client.aclose()
