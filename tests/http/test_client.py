"""The pooled HTTP/1.1 client against small real servers on loopback: keep-alive reuse, a
connection the server closed while idle, chunked answers, a server that goes away mid-answer,
nothing sent twice, the connection cap, the read timeout, response headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from prsm.performance.errors import ConnectionFailed
from prsm.performance.http._client import HttpPool, content, request_head
from prsm.performance.http._client_connection import ClientResponse
from prsm.performance.http._pool_stream import PoolStream
from prsm.performance.http._settings import HttpClientSettings

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
    writers: list[asyncio.StreamWriter] = []
    tasks: list[asyncio.Task[object]] = []

    async def start(handler: Handler) -> str:
        async def tracked(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            writers.append(w)
            task = asyncio.current_task()
            assert task is not None
            tasks.append(task)
            await handler(r, w)  # type: ignore[misc]

        srv = await asyncio.start_server(tracked, "127.0.0.1", 0)
        servers.append(srv)
        return f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"

    yield start
    for srv in servers:
        srv.close()
        await srv.wait_closed()
    for task in tasks:
        task.cancel()
    for w in writers:
        w.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0)


def _answers(raw: bytes) -> Handler:
    """A server handler that reads one request, writes ``raw`` and closes."""

    async def answer(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(raw)
        await w.drain()
        w.close()

    return answer


def _echo(connections: list[int], gate: asyncio.Event | None = None) -> Handler:
    """A keep-alive server handler answering each request with its body (after ``gate``);
    each connection appends to ``connections``."""

    async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                body = await _read_request(r)
                if gate is not None:
                    await gate.wait()
                w.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
                await w.drain()
        except asyncio.IncompleteReadError:
            w.close()

    return echo


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
        first = await pool.request(_req(origin, b'{"a":1}'))
        assert (first.status, first.body) == (200, b'{"a":1}')
        await asyncio.sleep(0.05)  # the server's close reaches the pooled connection
        second = await pool.request(_req(origin, b'{"b":2}'))
        assert (second.status, second.body) == (200, b'{"b":2}')
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
        whole = await pool.request(_req(origin))
        assert (whole.status, whole.body) == (200, b"data: 1\n\ndata: 2\n\n")
        answer = ClientResponse()
        parts = [c async for c in pool.stream(_req(origin), answer)]
        assert answer.status == 200 and b"".join(parts) == b"data: 1\n\ndata: 2\n\n"
        assert answer.header(b"transfer-encoding") == b"chunked"
        assert len(parts) == 2
        assert len(pool.connections) == 1  # both requests used one keep-alive connection
    finally:
        await pool.aclose()


async def test_server_gone_mid_answer_is_a_connection_failure(
    server: Callable[..., object],
) -> None:
    origin = await server(_answers(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial"))  # type: ignore[misc]
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
        whole = await pool.request(_req(origin))
        assert (whole.status, whole.body) == (200, b'{"ok": true}')
        answer = ClientResponse()
        parts = [c async for c in pool.stream(_req(origin), answer)]
        assert answer.status == 200 and b"".join(parts) == b'{"ok": true}'
    finally:
        await pool.aclose()


def test_origin_must_be_http() -> None:
    with pytest.raises(ValueError, match="origin"):
        HttpPool("ftp://x")


async def test_a_failure_after_the_request_was_sent_is_raised_not_sent_again(
    server: Callable[..., object],
) -> None:
    """Defect 5 of issue 14: on a reused connection, a failure before the first byte of the
    answer used to be re-sent on a new connection, so the server ran the request twice."""
    received: list[bytes] = []

    async def answers_once_then_drops(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        body = await _read_request(r)
        received.append(body)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await w.drain()
        received.append(await _read_request(r))  # the second request arrives: it is "run"
        w.transport.abort()  # ... and the server dies before answering

    origin = await server(answers_once_then_drops)  # type: ignore[misc]
    pool = HttpPool(origin)
    try:
        assert (await pool.request(_req(origin, b'{"n":1}'))).status == 200
        with pytest.raises(ConnectionFailed) as err:
            await pool.request(_req(origin, b'{"n":2}'))
        assert err.value.sent and not err.value.received
        await asyncio.sleep(0.05)
    finally:
        await pool.aclose()
    assert received == [b'{"n":1}', b'{"n":2}']  # the second request reached it once


async def test_a_stream_that_fails_after_sending_is_raised_not_sent_again(
    server: Callable[..., object],
) -> None:
    received: list[bytes] = []

    async def drops_the_second(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        received.append(await _read_request(r))
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await w.drain()
        received.append(await _read_request(r))
        w.transport.abort()

    origin = await server(drops_the_second)  # type: ignore[misc]
    pool = HttpPool(origin)
    try:
        await pool.request(_req(origin))
        with pytest.raises(ConnectionFailed):
            async for _ in pool.stream(_req(origin), ClientResponse()):
                pass
        await asyncio.sleep(0.05)
    finally:
        await pool.aclose()
    assert len(received) == 2


async def test_an_idle_connection_past_idle_timeout_is_not_reused(
    server: Callable[..., object],
) -> None:
    connections: list[int] = []
    origin = await server(_echo(connections))  # type: ignore[misc]
    pool = HttpPool(origin, HttpClientSettings(idle_timeout=0.05))
    try:
        await pool.request(_req(origin))
        await pool.request(_req(origin))  # reused at once
        assert len(connections) == 1
        await asyncio.sleep(0.1)
        await pool.request(_req(origin))  # idle too long: a new connection
        assert len(connections) == 2
    finally:
        await pool.aclose()


async def test_the_connection_cap_makes_requests_wait_for_a_free_connection(
    server: Callable[..., object],
) -> None:
    connections: list[int] = []
    release = asyncio.Event()
    origin = await server(_echo(connections, release))  # type: ignore[misc]
    pool = HttpPool(origin, HttpClientSettings(max_connections=2))
    try:
        calls = [asyncio.ensure_future(pool.request(_req(origin, b"%d" % i))) for i in range(5)]
        await asyncio.sleep(0.05)
        assert len(pool.connections) == 2 and len(pool.waiters) == 3
        release.set()
        answers = await asyncio.gather(*calls)
    finally:
        release.set()
        await pool.aclose()
    assert sorted(a.body for a in answers) == [b"%d" % i for i in range(5)]
    assert len(connections) == 2


async def test_read_timeout_bounds_the_wait_for_a_silent_server(
    server: Callable[..., object],
) -> None:
    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        await asyncio.sleep(5)

    origin = await server(silent)  # type: ignore[misc]
    pool = HttpPool(origin, HttpClientSettings(read_timeout=0.05))
    try:
        with pytest.raises(TimeoutError, match="no byte"):
            await pool.request(_req(origin))
    finally:
        await pool.aclose()


async def test_answer_headers_are_exposed(server: Callable[..., object]) -> None:
    limited = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\ncontent-length: 2\r\n\r\n{}"
    origin = await server(_answers(limited))  # type: ignore[misc]
    pool = HttpPool(origin)
    try:
        answer = await pool.request(_req(origin))
    finally:
        await pool.aclose()
    assert answer.status == 429 and answer.header(b"retry-after") == b"7"
    assert answer.header(b"x-missing") is None


async def test_connecting_to_nothing_is_a_failure_before_sending() -> None:
    from tests.conftest import free_port

    origin = f"http://127.0.0.1:{free_port()}"
    pool = HttpPool(origin)
    with pytest.raises(ConnectionFailed) as err:
        await pool.request(_req(origin))
    assert not err.value.sent


async def test_an_endless_answer_head_is_a_failure_not_a_memory_leak(
    server: Callable[..., object],
) -> None:
    endless = b"HTTP/1.1 200 OK\r\n" + b"".join(
        b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(2000)
    )
    origin = await server(_answers(endless))  # type: ignore[misc]
    pool = HttpPool(origin)
    try:
        with pytest.raises(ConnectionFailed, match="header section is too large"):
            await pool.request(_req(origin))
    finally:
        await pool.aclose()


async def test_a_stream_stopped_early_closes_its_connection_and_one_never_begun_sends_nothing(
    server: Callable[..., object],
) -> None:
    requests = 0
    gate = asyncio.Event()

    async def slow(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal requests
        await _read_request(r)
        requests += 1
        w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n")
        await w.drain()
        await gate.wait()  # the rest never comes while the test runs

    origin = await server(slow)  # type: ignore[misc]
    pool = HttpPool(origin)
    try:
        unused = pool.stream(_req(origin), ClientResponse())
        await unused.aclose()
        stream = pool.stream(_req(origin), ClientResponse())
        assert await stream.__anext__() == b"data: 1\n\n"
        (conn,) = pool.connections
        await stream.aclose()
        assert conn.closed and not pool.idle
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
        assert requests == 1
    finally:
        gate.set()
        await pool.aclose()


async def test_a_stream_answered_non_200_yields_the_body_once_and_frees_the_connection(
    server: Callable[..., object],
) -> None:
    gate = asyncio.Event()

    async def busy(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy")
        await w.drain()
        await gate.wait()  # the connection stays open

    origin = await server(busy)  # type: ignore[misc]
    pool = HttpPool(origin)
    try:
        answer = ClientResponse()
        parts = [c async for c in pool.stream(_req(origin), answer)]
        assert (answer.status, answer.body, parts) == (503, b"busy", [b"busy"])
        assert len(pool.idle) == 1  # back in the pool
    finally:
        gate.set()
        await pool.aclose()


def _no_response() -> None:
    """An upstream's stream: no response object for a 200 (one is made for a non-200 only)."""
    return None


@pytest.mark.parametrize("make", [_no_response, ClientResponse], ids=["upstream", "caller"])
async def test_a_stream_whose_end_came_with_its_chunk_frees_the_connection_at_once(
    server: Callable[..., object], make: Callable[[], ClientResponse | None]
) -> None:
    gate = asyncio.Event()

    async def whole(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                b"9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n")  # fmt: skip
        await w.drain()
        await gate.wait()  # the connection stays open

    origin = await server(whole)  # type: ignore[misc]
    pool = HttpPool(origin)
    try:
        stream = PoolStream(pool, _req(origin), make())
        assert await stream.__anext__() == b"data: 1\n\ndata: 2\n\n"
        assert len(pool.idle) == 1  # back in the pool with the last chunk, not a step later
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
        await stream.aclose()
        assert len(pool.idle) == 1 and not pool.idle[0].closed
    finally:
        gate.set()
        await pool.aclose()


@pytest.mark.parametrize("make", [_no_response, ClientResponse], ids=["upstream", "caller"])
async def test_a_finished_stream_closed_late_leaves_the_next_request_its_connection(
    server: Callable[..., object], make: Callable[[], ClientResponse | None]
) -> None:
    """Stream A's end came with its last chunk (its connection back in the pool); B takes that
    connection; A is closed only then (a caller that stopped at ``[DONE]``): B is answered."""
    second = asyncio.Event()

    async def two(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                b"9\r\ndata: 1\n\n\r\n0\r\n\r\n")  # fmt: skip
        await w.drain()
        await _read_request(r)  # B, on the same connection
        await second.wait()  # answered only after A was closed
        w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                b"9\r\ndata: 2\n\n\r\n0\r\n\r\n")  # fmt: skip
        await w.drain()
        await r.read()  # until the pool closes it

    origin = await server(two)  # type: ignore[misc]
    pool = HttpPool(origin)
    try:
        a = PoolStream(pool, _req(origin), make())
        assert await a.__anext__() == b"data: 1\n\n" and len(pool.idle) == 1
        b = PoolStream(pool, _req(origin), make())
        first = asyncio.ensure_future(b.__anext__())  # B sends on A's old connection
        for _ in range(5):
            await asyncio.sleep(0)
        assert not pool.idle and not first.done()
        await a.aclose()
        second.set()
        assert await asyncio.wait_for(first, 10) == b"data: 2\n\n"
    finally:
        second.set()
        await pool.aclose()


class _Named:
    """Stream errors named by their owner (as an upstream names its node's)."""

    def raised(self, exc: BaseException) -> BaseException | None:
        return RuntimeError(f"named: {type(exc).__name__}") if isinstance(exc, OSError) else None

    def answered(self, response: ClientResponse) -> BaseException:
        return LookupError(response.status, response.body)


async def test_a_stream_raises_its_failures_as_its_owner_names_them(
    server: Callable[..., object],
) -> None:
    origin = await server(_answers(b"HTTP/1.1 503 Busy\r\ncontent-length: 4\r\n\r\nbusy"))  # type: ignore[misc]
    gone = await server(_answers(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial"))  # type: ignore[misc]
    pool, pool2 = HttpPool(origin), HttpPool(gone)
    try:
        with pytest.raises(LookupError) as answered:
            await PoolStream(pool, _req(origin), ClientResponse(), _Named()).__anext__()
        assert answered.value.args == (503, b"busy")
        stream = PoolStream(pool2, _req(gone), ClientResponse(), _Named())
        assert await stream.__anext__() == b"partial"
        with pytest.raises(RuntimeError, match="named: ConnectionFailed") as named:
            await stream.__anext__()
        assert isinstance(named.value.__cause__, ConnectionFailed)
        with pytest.raises(StopAsyncIteration):  # ended
            await stream.__anext__()
    finally:
        await pool.aclose()
        await pool2.aclose()
