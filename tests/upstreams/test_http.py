"""The HTTP upstream against the real simulator on loopback: answers, streams, the error
classes, API keys from the environment, pooled connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from prsm.performance.errors import (
    ConfigError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from prsm.performance.fakes import SimSettings, UpstreamSimulator
from prsm.performance.http._pool_stream import PoolStream
from prsm.performance.routing._node import NodeSpec
from prsm.performance.types import AIRequest, JSONBody, RequestKind
from prsm.performance.upstreams._http import HttpUpstream, check_nodes, retry_after
from tests.conftest import free_port

CHAT = {"model": "sim-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture
async def sim() -> AsyncIterator[tuple[UpstreamSimulator, NodeSpec]]:
    s = UpstreamSimulator(SimSettings(port=0, name="s"))
    port = await s.start()
    yield s, NodeSpec(id="s", url=f"http://127.0.0.1:{port}/v1", models=["sim-chat"], timeout=2)
    await s.close()


def _req(**payload: object) -> AIRequest:
    return AIRequest(model="sim-chat", payload={**CHAT, **payload})


@pytest.mark.integration
async def test_execute_returns_raw_bytes_content_and_tokens(
    sim: tuple[UpstreamSimulator, NodeSpec],
) -> None:
    _s, node = sim
    async with HttpUpstream() as up:
        r1 = await up.execute(node, _req())
        r2 = await up.execute(
            node,
            AIRequest(kind=RequestKind.COMPLETION, payload={"model": "sim-chat", "prompt": "x"}),
        )
        r3 = await up.execute(
            node,
            AIRequest(kind=RequestKind.EMBEDDING, payload={"model": "sim-embed", "input": "x"}),
        )
    assert r1.content["choices"][0]["message"]["content"] == "tok0 tok1 tok2 tok3"
    assert r1.raw is not None and r1.raw.startswith(b'{"id":"chatcmpl-s-')
    assert r1.tokens == r1.content["usage"]["total_tokens"]
    assert r2.content["object"] == "text_completion"
    assert r3.content["object"] == "list"


async def _answering(answer: bytes, seen: list[bytes]) -> asyncio.Server:
    """A loopback server answering every request ``200`` with ``answer``; bodies to ``seen``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                seen.append(await reader.readexactly(length))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(answer))
                writer.write(answer)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass  # the client closed the connection: done
        finally:
            writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("answer", "tokens"),
    [
        (b'{"id":"a","usage":{"total_tokens":9}}', 9),
        (b'{"id":"a","usage":{"total_tokens":"9"}}', 0),  # not the OpenAI shape: passed on
        (b'[{"usage":1}]', 0),
        (b'{"id":"a"}', 0),
    ],
)
async def test_answers_pass_through_and_are_decoded_only_when_read(
    answer: bytes, tokens: int
) -> None:
    seen: list[bytes] = []
    server = await _answering(answer, seen)
    port = server.sockets[0].getsockname()[1]
    node = NodeSpec(id="f", url=f"http://127.0.0.1:{port}/v1", timeout=2)
    sent = b'{"model":"sim-chat", "messages":[{"role":"user","content":"hi"}]}'
    try:
        async with HttpUpstream() as up:
            r = await up.execute(node, AIRequest(model="sim-chat", payload=JSONBody(sent)))
            r2 = await up.execute(node, _req())
    finally:
        server.close()
        await server.wait_closed()
    assert seen == [sent, orjson.dumps(CHAT)]  # the client's bytes unchanged; a dict encoded
    assert r.raw == answer and r.tokens == tokens and r2.tokens == tokens
    assert r.content == orjson.loads(answer)


@pytest.mark.integration
async def test_a_200_that_is_not_json_is_the_nodes_error() -> None:
    server = await _answering(b"<html>oops</html>", [])
    port = server.sockets[0].getsockname()[1]
    node = NodeSpec(id="f", url=f"http://127.0.0.1:{port}/v1", timeout=2)
    try:
        async with HttpUpstream() as up:
            with pytest.raises(UpstreamError, match="not JSON") as err:
                await up.execute(node, _req())
    finally:
        server.close()
        await server.wait_closed()
    assert err.value.node_id == "f"


@pytest.mark.integration
async def test_connections_are_reused(sim: tuple[UpstreamSimulator, NodeSpec]) -> None:
    s, node = sim
    async with HttpUpstream() as up:
        for _ in range(20):
            await up.execute(node, _req())
        assert s.stats.open_connections == 1


@pytest.mark.integration
async def test_stream_yields_chunks_as_sent(sim: tuple[UpstreamSimulator, NodeSpec]) -> None:
    _s, node = sim
    async with HttpUpstream() as up:
        body = b"".join([c async for c in up.stream(node, _req(stream=True))])
        again = b"".join([c async for c in up.stream(node, _req(stream=True))])
    assert body.count(b"data: ") == 5 and body.endswith(b"data: [DONE]\n\n")
    assert again.count(b"data: ") == 5


@pytest.mark.integration
async def test_server_errors_are_retryable_and_client_errors_are_not(
    sim: tuple[UpstreamSimulator, NodeSpec],
) -> None:
    s, node = sim
    async with HttpUpstream() as up:
        with pytest.raises(UpstreamError) as err:
            await up.execute(node, AIRequest(model="x", payload={"model": "nope"}))
        assert err.value.status == 404 and err.value.retryable  # the node lacks the model
        assert err.value.body is not None and b"model_not_found" in err.value.body
        for kind, status in (("500", 500), ("429", 429)):
            s.control({"error_rate": 1.0, "error_kinds": [kind]})
            with pytest.raises(UpstreamUnavailableError) as err2:
                await up.execute(node, _req())
            assert err2.value.status == status and err2.value.retryable
            # the node's Retry-After (the simulator sends 1 with its 429s) reaches the policy
            assert err2.value.retry_after == (1.0 if status == 429 else None)
            with pytest.raises(UpstreamUnavailableError):
                async for _ in up.stream(node, _req(stream=True)):
                    pass
        s.control({"error_kinds": ["drop"]})
        with pytest.raises(UpstreamUnavailableError):
            await up.execute(node, _req())
        s.control({"error_kinds": ["timeout"]})
        with pytest.raises(UpstreamTimeoutError):
            await up.execute(node.with_changes(timeout=0.2), _req())
        s.control({"error_rate": 0.0})
        assert (await up.execute(node, _req())).status == 200


@pytest.mark.integration
async def test_unreachable_node_is_unavailable() -> None:
    node = NodeSpec(id="gone", url=f"http://127.0.0.1:{free_port()}/v1", timeout=2)
    async with HttpUpstream() as up:
        with pytest.raises(UpstreamUnavailableError) as err:
            await up.execute(node, _req())
    assert err.value.retryable and err.value.node_id == "gone"


@pytest.mark.integration
async def test_api_key_comes_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    s = UpstreamSimulator(SimSettings(port=0, api_key="sk-secret-123"))
    port = await s.start()
    node = NodeSpec(id="k", url=f"http://127.0.0.1:{port}/v1", api_key_env="PRSM_TEST_UP_KEY")
    try:
        monkeypatch.setenv("PRSM_TEST_UP_KEY", "sk-secret-123")
        async with HttpUpstream() as up:
            assert (await up.execute(node, _req())).status == 200
        monkeypatch.setenv("PRSM_TEST_UP_KEY", "wrong")
        async with HttpUpstream() as up:
            with pytest.raises(UpstreamError) as err:
                await up.execute(node, _req())
        assert err.value.status == 401 and "sk-secret-123" not in str(err.value)
    finally:
        await s.close()


def test_check_nodes_names_the_node_and_field() -> None:
    with pytest.raises(ConfigError) as err:
        check_nodes([NodeSpec(id="a")])
    assert err.value.field == "node[a].url"
    with pytest.raises(ConfigError) as err:
        check_nodes([NodeSpec(id="b", url="ftp://x")])
    assert err.value.field == "node[b].url"
    with pytest.raises(ConfigError) as err:
        check_nodes([NodeSpec(id="c", url="http://x/v1", api_key_env="NOPE_X")], environ={})
    assert err.value.field == "node[c].api_key_env" and "NOPE_X" in str(err.value)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after(b"7") == 7.0
    assert retry_after(None) is None and retry_after(b"") is None
    assert retry_after(b"soon") is None
    date = b"Wed, 21 Oct 2015 07:28:00 GMT"
    assert retry_after(date, now=1445412470.0) == 10.0  # 07:27:50 then
    assert retry_after(date, now=1445412490.0) == 0.0  # already past


@pytest.mark.integration
async def test_retry_after_of_a_stream_and_of_an_http_date() -> None:
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        seen.append(await reader.readexactly(length))
        when = b"Wed, 21 Oct 2099 07:28:00 GMT"
        writer.write(b"HTTP/1.1 503 Unavailable\r\nRetry-After: %s\r\n" % when)
        writer.write(b"content-length: 2\r\nconnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    node = NodeSpec(id="f", url=f"http://127.0.0.1:{port}/v1", timeout=2)
    try:
        async with HttpUpstream() as up:
            with pytest.raises(UpstreamUnavailableError) as err:
                async for _ in up.stream(node, _req(stream=True)):
                    pass
    finally:
        server.close()
        await server.wait_closed()
    assert err.value.status == 503
    assert err.value.retry_after is not None and err.value.retry_after > 1e9


def test_node_http_options_are_validated_and_reach_the_client(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        NodeSpec(id="n", connect_timeout=0)
    assert err.value.field == "node[n].connect_timeout"
    with pytest.raises(ConfigError) as err:
        NodeSpec(id="n", max_connections=0)
    assert err.value.field == "node[n].max_connections"
    with pytest.raises(ConfigError) as err:
        check_nodes([NodeSpec(id="t", url="https://x/v1", ca_bundle=str(tmp_path / "none.pem"))])
    assert err.value.field == "node[t].ca_bundle"
    node = NodeSpec(id="t", url="https://x/v1", tls_verify=False, max_connections=4,
                    connect_timeout=1.5, read_timeout=9.0)  # fmt: skip
    settings = HttpUpstream(connect_timeout=3).client_settings(node)
    assert (settings.verify, settings.max_connections) == (False, 4)
    assert (settings.connect_timeout, settings.read_timeout) == (1.5, 9.0)
    assert HttpUpstream(connect_timeout=3).client_settings(NodeSpec(id="d")).connect_timeout == 3


@pytest.mark.integration
async def test_a_stream_bounded_by_its_caller_is_the_pools_own_with_the_nodes_errors(
    sim: tuple[UpstreamSimulator, NodeSpec],
) -> None:
    s, node = sim
    async with HttpUpstream(enforce_timeout=False) as up:
        stream = up.stream(node, _req(stream=True))
        assert type(stream) is PoolStream  # no layer around it to translate its errors
        body = b"".join([c async for c in stream])
        assert body.count(b"data: ") == 5 and body.endswith(b"data: [DONE]\n\n")
        s.control({"error_rate": 1.0, "error_kinds": ["500"]})
        with pytest.raises(UpstreamUnavailableError) as err:
            async for _ in up.stream(node, _req(stream=True)):
                pass
        assert err.value.status == 500 and err.value.node_id == node.id
        s.control({"error_kinds": ["drop"]})
        with pytest.raises(UpstreamUnavailableError):
            async for _ in up.stream(node, _req(stream=True)):
                pass
        s.control({"error_rate": 0.0})
        body = b"".join([c async for c in up.stream(node, _req(stream=True))])
        assert body.endswith(b"data: [DONE]\n\n")
