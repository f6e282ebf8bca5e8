"""The pooled HTTP/1.1 client against small real servers on loopback: keep-alive reuse, a
connection the server closed while idle, chunked answers, a server that goes away mid-answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from prsm.performance.http._client import ConnectionFailed, HttpPool, content, request_head

pytestmark = pytest.mark.integration

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], "asyncio.Future[None] | object"]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return await reader.readexactly(length)


@pytest.fixture
async def server() -> AsyncIterator[Callable[..., object]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> str:
        srv = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
        servers.append(srv)
        return f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"

    yield start
    for srv in servers:
        srv.close()
        await srv.wait_closed()


def _req(origin: str, body: bytes = b"{}") -> bytes:
    return content(request_head("/v1/x", origin.split("//")[1]), body)


async def test_keep_alive_then_server_closes_idle_connection(server: Callable[..., object]) -> None:
    connections = 0

    async def once_per_connection(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        body = await _read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        await w.drain()
        w.close()  # keep-alive was not refused, but the server drops the idle connection

    origin = await server(once_per_connection)  # type: ignore[misc]
    pool = HttpPool(origin)
    try:
        assert await pool.request(_req(origin, b'{"a":1}')) == (200, b'{"a":1}')
        await asyncio.sleep(0.05)
        assert await pool.request(_req(origin, b'{"b":2}')) == (200, b'{"b":2}')
    finally:
        await pool.aclose()
    assert connections == 2


async def test_chunked_answer_is_read_whole_and_streamed(server: Callable[..., object]) -> None:
    async def chunked(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            try:
                await _read_request(r)
            except asyncio.IncompleteReadError:
                w.close()
                await w.wait_closed()
                return
            w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for part in (b"data: 1\n\n", b"data: 2\n\n"):
                w.write(b"%x\r\n%s\r\n" % (len(part), part))
                await w.drain()
                await asyncio.sleep(0.01)
            w.write(b"0\r\n\r\n")
            await w.drain()

    origin = await server(chunked)  # type: ignore[misc]
    pool = HttpPool(origin)
    try:
        assert await pool.request(_req(origin)) == (200, b"data: 1\n\ndata: 2\n\n")
        status: list[int] = []
        parts = [c async for c in pool.stream(_req(origin), status=status)]
        assert status == [200] and b"".join(parts) == b"data: 1\n\ndata: 2\n\n"
        assert len(parts) == 2
        assert len(pool.connections) == 1  # both requests used one keep-alive connection
    finally:
        await pool.aclose()


async def test_server_gone_mid_answer_is_a_connection_failure(
    server: Callable[..., object],
) -> None:
    async def half(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await w.drain()
        w.close()

    origin = await server(half)  # type: ignore[misc]
    pool = HttpPool(origin)
    try:
        with pytest.raises(ConnectionFailed) as err:
            await pool.request(_req(origin))
        assert err.value.received
    finally:
        await pool.aclose()


async def test_answer_without_length_ends_when_the_server_closes(
    server: Callable[..., object],
) -> None:
    async def unframed(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"ok": ')
        await w.drain()
        await asyncio.sleep(0.01)
        w.write(b"true}")
        await w.drain()
        w.close()

    origin = await server(unframed)  # type: ignore[misc]
    pool = HttpPool(origin)
    try:
        assert await pool.request(_req(origin)) == (200, b'{"ok": true}')
        status: list[int] = []
        parts = [c async for c in pool.stream(_req(origin), status=status)]
        assert status == [200] and b"".join(parts) == b'{"ok": true}'
    finally:
        await pool.aclose()


def test_origin_must_be_http() -> None:
    with pytest.raises(ValueError, match="origin"):
        HttpPool("ftp://x")
