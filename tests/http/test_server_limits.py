"""The server core's limits and timeouts (issue 14, defect 2), each against the real gateway
app in process: caps on the URL and the headers, the head, body and keep-alive timeouts, the
connection cap, a bad request in a pipeline, HTTP/1.0 streams, ``Expect: 100-continue`` in a
pipeline, back-pressure on a client that reads nothing, half-closed sockets, upgrades,
request smuggling and invalid chunked bodies. Timeouts are set short; no test asserts a
timing, only what the client sees and what the server holds."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import orjson
import pytest

from prsm.performance.gateway._settings import GatewaySettings
from prsm.performance.http._exchange import ServerExchange
from prsm.performance.http._server import HttpServer
from prsm.performance.http._settings import HttpServerSettings
from prsm.performance.types import Response

from .serving import CHAT, STREAM, GatedUpstream, Reader, connect, request, running

SHORT = HttpServerSettings(
    header_timeout=0.2, body_timeout=0.2, keep_alive_timeout=0.2, write_timeout=0.3
)


def gw(**http: object) -> GatewaySettings:
    return GatewaySettings(http=HttpServerSettings(**{**_fields(SHORT), **http}))  # type: ignore[arg-type]


def _fields(s: HttpServerSettings) -> dict[str, object]:
    return {name: getattr(s, name) for name in s.__dataclass_fields__}


async def _closed(reader: Reader) -> bool:
    """Read until the server closes (``True``) or 5 s pass (``False``)."""
    try:
        async with asyncio.timeout(5):
            while not reader.eof:
                data = await reader.reader.read(65536)
                if not data:
                    reader.eof = True
                else:
                    reader.parser.feed_data(data)
    except (TimeoutError, ConnectionResetError):
        return reader.eof
    return True


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (5 s at most) for the server side to catch up with what the client saw."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the server did not get there within 5 s")


async def _reads_nothing(port: int) -> asyncio.StreamWriter:
    """A connection whose client never reads (with a 4 KiB receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    _, w = await asyncio.open_connection(sock=sock)
    return w


def _error(answer_body: bytes) -> str:
    code: str = orjson.loads(answer_body)["error"]["code"]
    return code


async def test_a_url_over_the_cap_is_414_and_the_rest_is_not_read() -> None:
    async with running(gw(max_url_bytes=1024)) as (server, port, _), connect(port) as (rd, w):
        w.write(b"GET /" + b"a" * 4096)
        answers = await rd.until(1)
        assert answers[0].status == 414 and _error(answers[0].body) == "url_too_long"
        assert answers[0].headers[b"connection"] == b"close"
        for _ in range(16):  # the client goes on sending; the server drops it, then closes
            w.write(b"a" * 65536)
        assert await _closed(rd)
        await _until(lambda: not server.connections)


@pytest.mark.parametrize(
    "headers",
    [
        b"X-Big: " + b"v" * 5000 + b"\r\n",  # one large header
        b"".join(b"X-%d: v\r\n" % i for i in range(40)),  # too many
    ],
)
async def test_headers_over_the_caps_are_431(headers: bytes) -> None:
    settings = gw(max_header_bytes=4096, max_headers=32)
    async with running(settings) as (_, port, _), connect(port) as (rd, w):
        w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        answers = await rd.until(1)
        assert answers[0].status == 431 and _error(answers[0].body) == "headers_too_large"
        assert await _closed(rd)


async def test_a_header_that_never_ends_is_bounded() -> None:
    """One header value sent without its line end: the parser would hold it all."""
    async with running(gw(max_header_bytes=4096)) as (_, port, _), connect(port) as (rd, w):
        w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        await asyncio.sleep(0.01)
        for _ in range(8):
            w.write(b"v" * 65536)
            await asyncio.sleep(0.01)
        answers = await rd.until(1)
        assert answers[0].status == 431
        assert await _closed(rd)


async def test_a_head_sent_slowly_gets_408_and_the_connection_closes() -> None:
    async with running(gw()) as (server, port, _), connect(port) as (rd, w):
        w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # ... and the rest never comes
        answers = await rd.until(1)
        assert answers[0].status == 408 and _error(answers[0].body) == "request_timeout"
        assert await _closed(rd)
        await _until(lambda: not server.connections)


async def test_a_body_sent_slowly_gets_408_and_the_connection_closes() -> None:
    async with running(gw()) as (_, port, _), connect(port) as (rd, w):
        w.write(request(CHAT)[:-10])  # the head and all but 10 bytes of the body
        answers = await rd.until(1)
        assert answers[0].status == 408
        assert await _closed(rd)


async def test_idle_connections_close_after_the_keep_alive_timeout() -> None:
    async with running(gw()) as (server, port, _), connect(port) as (rd, w):
        async with connect(port) as (silent, _):
            w.write(request(CHAT))
            assert (await rd.until(1))[0].status == 200
            assert await _closed(rd)  # idle after its answer
            assert await _closed(silent)  # never sent a byte
        await _until(lambda: not server.connections)


async def test_beyond_the_connection_cap_the_longest_idle_makes_room() -> None:
    async with running(gw(max_connections=3, keep_alive_timeout=30)) as (server, port, _):
        async with connect(port) as (idle, _), connect(port) as (_, _w2), connect(port) as _c3:
            await asyncio.sleep(0.05)
            async with connect(port) as (rd, w):
                w.write(request(CHAT))
                assert (await rd.until(1))[0].status == 200
                assert await _closed(idle)  # the oldest idle connection made room
        assert server.evicted == 1


async def test_beyond_the_connection_cap_with_every_one_busy_new_ones_get_503() -> None:
    upstream = GatedUpstream()
    async with running(gw(max_connections=2, keep_alive_timeout=30), upstream) as (
        server, port, _,
    ):  # fmt: skip
        async with connect(port) as (r1, w1), connect(port) as (r2, w2):
            w1.write(request(STREAM))
            w2.write(request(STREAM))
            await _until(lambda: server.in_flight == 2)  # both in progress
            async with connect(port) as (r3, _):
                answers = await r3.until(1)
                assert answers[0].status == 503
                assert _error(answers[0].body) == "too_many_connections"
            upstream.release(10)  # the connections already open are still served
            assert (await r1.until(1))[0].body.endswith(b"data: [DONE]\n\n")
            assert (await r2.until(1))[0].body.endswith(b"data: [DONE]\n\n")
        assert server.refused == 1


async def test_a_bad_request_in_a_pipeline_comes_after_the_good_ones() -> None:
    """The good requests before a malformed one used to be dropped."""
    rid = [b"p-%d" % i for i in range(3)]
    async with running(gw()) as (_, port, _), connect(port) as (rd, w):
        good = b"".join(request(CHAT, extra=b"x-request-id: %s\r\n" % r) for r in rid)
        w.write(good + b"NOT HTTP\r\n\r\n" + request(CHAT))
        answers = await rd.until(4)
        assert [a.status for a in answers] == [200, 200, 200, 400]
        assert [a.headers[b"x-request-id"] for a in answers[:3]] == rid
        assert answers[3].headers[b"connection"] == b"close"
        assert await _closed(rd)  # the request after the bad one is not answered


async def test_the_exchange_names_its_client() -> None:
    seen: list[str | None] = []

    def handler(x: ServerExchange[object]) -> None:
        seen.append(x.client)
        x.respond(200, [(b"content-length", b"0")], b"")

    server: HttpServer[object] = HttpServer(handler)
    port = await server.start("127.0.0.1", 0)
    try:
        async with connect(port) as (rd, w):
            w.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await rd.until(1))[0].status == 200
    finally:
        await server.shutdown(0)
    assert seen == ["127.0.0.1"]


async def test_reading_resumes_with_a_read_ahead_of_one() -> None:
    async with running(gw(max_pipelined=1)) as (_, port, _), connect(port) as (rd, w):
        w.write(request(CHAT) * 6)
        assert [a.status for a in await rd.until(6)] == [200] * 6


async def test_an_http_10_client_gets_a_close_delimited_stream() -> None:
    upstream = GatedUpstream(events=2)
    async with running(gw(), upstream) as (_, port, _), connect(port) as (rd, w):
        w.write(request(STREAM).replace(b"HTTP/1.1", b"HTTP/1.0", 1))
        upstream.release(2)
        data = b""
        async with asyncio.timeout(5):
            while chunk := await rd.reader.read(65536):
                data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        assert b"transfer-encoding" not in head.lower() and b"connection: close" in head
        assert body == b'data: {"i": 0}\n\ndata: {"i": 1}\n\ndata: [DONE]\n\n'


async def test_an_http_10_keep_alive_client_is_told_the_connection_stays() -> None:
    async with running(gw()) as (_, port, _), connect(port) as (rd, w):
        first = request(CHAT, extra=b"Connection: keep-alive\r\n")
        w.write(first.replace(b"HTTP/1.1", b"HTTP/1.0", 1))
        answers = await rd.until(1)
        assert answers[0].headers[b"connection"] == b"keep-alive"
        w.write(request(CHAT))
        assert (await rd.until(2))[1].status == 200


async def test_continue_for_a_pipelined_request_comes_after_the_answer_before_it() -> None:
    upstream = GatedUpstream(events=1)
    async with (
        running(gw(keep_alive_timeout=30), upstream) as (_, port, _),
        connect(port) as (
            rd,
            w,
        ),
    ):
        waiting = request(CHAT, extra=b"Expect: 100-continue\r\n")
        w.write(request(STREAM) + waiting[: -len(CHAT)])
        await asyncio.sleep(0.05)
        upstream.release()
        data = b""
        async with asyncio.timeout(5):
            while b"100 Continue" not in data:
                data += await rd.reader.read(65536)
        # the stream's answer is whole before the go-ahead
        assert data.index(b"data: [DONE]") < data.index(b"HTTP/1.1 100 Continue")
        w.write(CHAT)
        rd.parser.feed_data(data.split(b"HTTP/1.1 100 Continue\r\n\r\n")[0])
        assert [a.status for a in await rd.until(2)] == [200, 200]


async def test_expect_with_a_body_over_the_limit_is_413_without_a_go_ahead() -> None:
    settings = GatewaySettings(max_body_bytes=64, http=SHORT)
    async with running(settings) as (_, port, _), connect(port) as (rd, w):
        w.write(request(b"x" * 1000, extra=b"Expect: 100-continue\r\n")[:-1000])
        answers = await rd.until(1)
        assert answers[0].status == 413


async def test_a_client_that_reads_nothing_holds_a_bounded_buffer() -> None:
    """Pipelined answers used to be written regardless of whether the client read them."""
    upstream = GatedUpstream()
    big = orjson.dumps({"id": "x", "pad": "y" * 65536})

    async def execute(node: object, req: object) -> Response:
        return Response(raw=big, tokens=1)

    upstream.execute = execute  # type: ignore[assignment,method-assign]
    settings = gw(keep_alive_timeout=30, write_timeout=30)
    async with running(settings, upstream) as (server, port, _):
        w = await _reads_nothing(port)
        try:
            w.write(request(CHAT) * 300)  # ~20 MB of answers, none of them read
            held = 0
            for _ in range(20):
                await asyncio.sleep(0.02)
                for conn in server.connections:
                    held = max(held, conn.transport.get_write_buffer_size())
            assert 0 < held <= 65536 + len(big) + 4096  # the high-water mark and one answer
        finally:
            w.close()


async def test_a_stream_the_client_stops_reading_is_dropped_after_the_write_timeout() -> None:
    upstream = GatedUpstream(events=400)
    big = b"data: " + b"x" * 32768 + b"\n\n"

    async def stream(node: object, req: object) -> object:
        for _ in range(400):
            yield big

    upstream.stream = stream  # type: ignore[assignment,method-assign]
    async with running(gw(write_timeout=0.3), upstream) as (server, port, _):
        w = await _reads_nothing(port)
        try:
            w.write(request(STREAM))
            async with asyncio.timeout(5):
                while server.connections or server.in_flight:
                    for conn in server.connections:
                        assert conn.transport.get_write_buffer_size() <= 65536 + 2 * len(big)
                    await asyncio.sleep(0.05)
        finally:
            w.close()


async def test_a_half_closed_client_still_gets_its_answer() -> None:
    """The transport used to close at the client's end of input, dropping the answer."""
    async with running(gw()) as (_, port, _), connect(port) as (rd, w):
        w.write(request(CHAT) + request(CHAT))
        w.write_eof()
        answers = await rd.until(2)
        assert [a.status for a in answers] == [200, 200]
        assert await _closed(rd)


async def test_an_upgrade_request_is_answered_as_http_11_then_closed() -> None:
    async with running(gw()) as (_, port, _), connect(port) as (rd, w):
        w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
        answers = await rd.until(1)
        assert answers[0].status == 200
        assert await _closed(rd)


@pytest.mark.parametrize(
    "data",
    [
        # request smuggling: a length and chunked framing at once
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Content-Length: 5\r\n\r\nabcd",
        # invalid chunked encoding
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nabc\r\n0\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabcdef\r\n0\r\n\r\n",
    ],
)
async def test_smuggling_and_bad_chunking_are_400_and_close(data: bytes) -> None:
    async with running(gw()) as (_, port, _), connect(port) as (rd, w):
        w.write(data + request(CHAT))
        answers = await rd.until(1)
        assert answers[0].status == 400 and _error(answers[0].body) == "bad_request"
        assert await _closed(rd)
        assert len(rd.answers) == 1  # what followed was not read as a request


def test_bad_settings_name_the_field() -> None:
    from prsm.performance.errors import ConfigError

    for field, value in (("max_url_bytes", 0), ("header_timeout", 0), ("max_connections", -1),
                         ("keep_alive_timeout", "5")):  # fmt: skip
        with pytest.raises(ConfigError) as err:
            HttpServerSettings(**{field: value})  # type: ignore[arg-type]
        assert err.value.field == field
