"""The HTTP/1.1 server core (``http/``) in process, on a loopback port, in front of the real
gateway app and orchestrator with an in-process upstream; the client side is raw bytes on a
socket, read back with httptools."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
import pytest

from prsm.performance.gateway._settings import GatewaySettings
from prsm.performance.http import HttpServer
from prsm.performance.http._settings import HttpServerSettings

from .serving import CHAT, STREAM, connect, request, running


async def test_keep_alive_serves_back_to_back_requests_on_one_connection() -> None:
    async with running() as (server, port, _), connect(port) as (reader, w):
        for i in range(3):
            w.write(request(CHAT, extra=b"x-request-id: k-%d\r\n" % i))
            answers = await reader.until(i + 1)
            assert answers[i].status == 200
            assert orjson.loads(answers[i].body)["id"] == f"k-{i}"
            assert answers[i].headers[b"x-request-id"] == b"k-%d" % i
            assert b"connection" not in answers[i].headers
        assert len(server.connections) == 1


def _alternating(name: bytes) -> bytes:
    return bytes(c ^ 32 if i % 2 and 97 <= c | 32 <= 122 else c for i, c in enumerate(name))


@pytest.mark.parametrize("spell", [bytes.lower, bytes.title, bytes.upper, _alternating])
async def test_header_names_are_read_however_they_are_spelled(
    spell: Callable[[bytes], bytes],
) -> None:
    # the usual spellings are looked up in a table, any other is read the long way
    host, ctype, length, rid = (spell(n) for n in (b"host", b"content-type", b"content-length",
                                                   b"x-request-id"))  # fmt: skip
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\n%s: gw\r\n%s: application/json\r\n"
        b"%s: %d\r\n%s: sp-1\r\n\r\n" % (host, ctype, length, len(CHAT), rid)
    )
    async with running() as (_, port, _), connect(port) as (reader, w):
        w.write(head + CHAT)
        answers = await reader.until(1)
    assert answers[0].status == 200
    assert answers[0].headers[b"x-request-id"] == b"sp-1"


SPELLINGS = [bytes.lower, bytes.title, bytes.upper, _alternating]


@pytest.mark.parametrize("spell", SPELLINGS)
async def test_a_content_length_over_the_limit_is_413_however_it_is_spelled(
    spell: Callable[[bytes], bytes],
) -> None:
    # what the server notes of Content-Length (the body limit) holds for every spelling
    body = CHAT + b" " * 100
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n%s: %d\r\n\r\n" % (
        spell(b"content-length"),
        len(body),
    )
    async with (
        running(GatewaySettings(max_body_bytes=64)) as (_, port, _),
        connect(port) as (reader, w),
    ):
        w.write(head + body)
        answers = await reader.until(1)
        assert answers[0].status == 413
        await reader.until(2)
        assert reader.eof


@pytest.mark.parametrize("spell", SPELLINGS)
async def test_connection_close_is_honoured_however_it_is_spelled(
    spell: Callable[[bytes], bytes],
) -> None:
    async with running() as (_, port, _), connect(port) as (reader, w):
        w.write(request(CHAT, extra=b"%s: close\r\n" % spell(b"connection")))
        answers = await reader.until(1)
        assert answers[0].status == 200
        await reader.until(2)
        assert reader.eof  # closed once its answer was done


@pytest.mark.parametrize("spell", SPELLINGS)
async def test_expect_100_continue_is_answered_however_it_is_spelled(
    spell: Callable[[bytes], bytes],
) -> None:
    async with running() as (_, port, _), connect(port) as (reader, w):
        head = request(CHAT, extra=b"%s: 100-continue\r\n" % spell(b"expect"))
        w.write(head[: -len(CHAT)])
        async with asyncio.timeout(10):
            line = await reader.reader.readuntil(b"\r\n\r\n")
        assert line.startswith(b"HTTP/1.1 100 Continue")
        w.write(CHAT)
        answers = await reader.until(1)
    assert answers[0].status == 200


def test_kept_header_names_are_compared_in_lower_case() -> None:
    # a caller naming a kept header in another case keeps it under every spelling
    server = HttpServer(_echo, header_names=(b"X-Api-Key",))
    assert server.header_names == frozenset({b"x-api-key"})
    assert {server.header_table[s][:2] for s in (b"x-api-key", b"X-Api-Key", b"X-API-KEY")} == {
        (b"x-api-key", True)
    }


async def _echo(exchange: object) -> None:
    raise AssertionError("never called: no request is sent")


async def test_pipelined_requests_are_answered_in_order() -> None:
    rid = [b"r-%d" % i for i in range(5)]
    async with running() as (_, port, _), connect(port) as (reader, w):
        w.write(b"".join(request(CHAT, extra=b"x-request-id: %s\r\n" % r) for r in rid))
        answers = await reader.until(len(rid))
    assert [a.status for a in answers] == [200] * len(rid)
    assert [a.headers[b"x-request-id"] for a in answers] == rid


async def test_more_pipelined_requests_than_the_queue_holds_are_all_answered() -> None:
    n = HttpServerSettings().max_pipelined * 3
    async with running() as (_, port, _), connect(port) as (reader, w):
        w.write(request(CHAT) * n)
        answers = await reader.until(n)
    assert len(answers) == n and {a.status for a in answers} == {200}


async def test_body_over_the_limit_is_413_and_the_connection_closes() -> None:
    settings = GatewaySettings(max_body_bytes=64)
    async with running(settings) as (_, port, _), connect(port) as (reader, w):
        w.write(request(CHAT + b" " * 100))
        answers = await reader.until(1)
        assert answers[0].status == 413
        assert orjson.loads(answers[0].body)["error"]["code"] == "payload_too_large"
        assert answers[0].headers[b"connection"] == b"close"
        await reader.until(2)
        assert reader.eof


async def test_chunked_body_over_the_limit_is_413() -> None:
    settings = GatewaySettings(max_body_bytes=64)
    body = CHAT + b" " * 100
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
    async with running(settings) as (_, port, _), connect(port) as (reader, w):
        w.write(head + chunked)
        answers = await reader.until(1)
        assert answers[0].status == 413
        await reader.until(2)
        assert reader.eof


async def test_chunked_body_within_the_limit_is_read_whole() -> None:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
    parts = [CHAT[:10], CHAT[10:]]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    async with running() as (_, port, _), connect(port) as (reader, w):
        w.write(head + chunked)
        answers = await reader.until(1)
    assert answers[0].status == 200


@pytest.mark.parametrize(
    "data",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: x\r\n\r\n",
    ],
)
async def test_malformed_http_is_400_and_the_connection_closes(data: bytes) -> None:
    async with running() as (_, port, _), connect(port) as (reader, w):
        w.write(data)
        answers = await reader.until(1)
        assert answers[0].status == 400
        assert answers[0].headers[b"connection"] == b"close"
        assert orjson.loads(answers[0].body)["error"]["type"] == "invalid_request_error"
        await reader.until(2)
        assert reader.eof


async def test_malformed_request_after_a_good_one_is_answered_after_it() -> None:
    async with running() as (_, port, _), connect(port) as (reader, w):
        w.write(request(CHAT) + b"GARBAGE\r\n\r\n")
        answers = await reader.until(2)
        assert [a.status for a in answers] == [200, 400]
        await reader.until(3)
        assert reader.eof


async def test_head_answers_the_head_without_the_body() -> None:
    async with running() as (_, port, _), connect(port) as (reader, w):
        # the app routes HEAD nowhere (404); the server sends the head of that answer only
        w.write(b"HEAD /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        w.write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 ") < 2 or not data.endswith(b"}"):
            async with asyncio.timeout(10):
                data += await reader.reader.read(65536)
    first, rest = data.split(b"\r\n\r\n", 1)
    assert first.startswith(b"HTTP/1.1 404") and b"content-length: " in first
    assert rest.startswith(b"HTTP/1.1 200") and rest.endswith(b'\r\n\r\n{"status":"ok"}')


async def test_stream_is_passed_on_chunk_by_chunk() -> None:
    async with running() as (_, port, upstream), connect(port) as (reader, w):
        w.write(request(STREAM))
        upstream.release()
        answers = await reader.until(1, chunks=1)
        assert answers[0].status == 200
        assert answers[0].headers[b"transfer-encoding"] == b"chunked"
        assert answers[0].body == b'data: {"i": 0}\n\n'  # before the next event exists
        upstream.release()
        answers = await reader.until(1, chunks=2)
        assert answers[0].chunks[-1] == b'data: {"i": 1}\n\n'
        upstream.release()
        answers = await reader.until(1)
        assert answers[0].body.endswith(b"data: [DONE]\n\n")
        w.write(request(CHAT))  # the connection is kept after a stream
        answers = await reader.until(2)
        assert answers[1].status == 200


async def test_shutdown_lets_an_in_flight_stream_finish_and_refuses_new_connections() -> None:
    async with running() as (server, port, upstream), connect(port) as (reader, w):
        w.write(request(STREAM))
        upstream.release()
        await reader.until(1, chunks=1)
        async with connect(port) as (idle_reader, _):  # an idle keep-alive connection
            stopping = asyncio.ensure_future(server.shutdown(30))
            await idle_reader.until(1)
            assert idle_reader.eof  # idle connections are closed at once
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        assert not stopping.done()
        upstream.release(2)
        answers = await reader.until(1)
        assert answers[0].complete and answers[0].body.endswith(b"data: [DONE]\n\n")
        await stopping
        await reader.until(2)
        assert reader.eof  # closed once its answer was done


async def test_shutdown_past_the_grace_period_cuts_the_stream() -> None:
    async with running() as (server, port, upstream), connect(port) as (reader, w):
        w.write(request(STREAM))
        upstream.release()
        await reader.until(1, chunks=1)
        await server.shutdown(0)
        answers = await reader.until(1)
        assert reader.eof and not answers[0].complete
        assert server.in_flight == 0


async def test_one_task_answers_a_connections_requests_one_after_another() -> None:
    async with running() as (server, port, _), connect(port) as (reader, w):
        workers = []
        for i in range(3):
            w.write(request(CHAT, extra=b"x-request-id: t-%d\r\n" % i))
            answers = await reader.until(i + 1)
            assert answers[i].status == 200
            await asyncio.sleep(0)  # the worker parks once the answer is out
            (conn,) = server.connections
            assert conn.task is None  # idle: no request in progress
            assert conn.parked is not None and not conn.parked.done()
            workers.append(conn.worker)
        assert workers[0] is not None and workers.count(workers[0]) == 3


async def test_a_parked_worker_ends_when_its_connection_closes() -> None:
    async with running() as (server, port, _):
        async with connect(port) as (reader, w):
            w.write(request(CHAT))
            await reader.until(1)
            await asyncio.sleep(0)
            (conn,) = server.connections
            worker = conn.worker
            assert worker is not None and not worker.done()
        for _ in range(100):  # the close reaches the server, then the worker wakes and ends
            if worker.done():
                break
            await asyncio.sleep(0.01)
        assert worker.done() and not worker.cancelled()
        assert conn.worker is None and conn.parked is None
        assert not server.connections
