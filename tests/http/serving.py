"""Serving the real gateway app on the server core in process, on a loopback port, with an
in-process upstream; the client side is raw bytes on a socket, read back with httptools."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httptools
import orjson

from prsm.performance.gateway._app import GatewayApp
from prsm.performance.gateway._asgi import RequestHead
from prsm.performance.gateway._settings import GatewaySettings
from prsm.performance.http._server import HttpServer
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.routing._node import NodeSpec
from prsm.performance.serve._processes import gateway_server
from prsm.performance.types import AIRequest, Response

CHAT = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
STREAM = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                       "stream": True})  # fmt: skip


class GatedUpstream:
    """Answers chat with the request id; streams one event per ``release()``, then [DONE]."""

    def __init__(self, events: int = 3) -> None:
        self.events = events
        self.gate: asyncio.Queue[None] = asyncio.Queue()

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self.gate.put_nowait(None)

    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        body = {"id": request.id, "usage": {"total_tokens": 1}}
        return Response(content=body, raw=orjson.dumps(body), tokens=1)

    async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        for i in range(self.events):
            await self.gate.get()
            yield b'data: {"i": %d}\n\n' % i
        yield b"data: [DONE]\n\n"


class Answer:
    """One parsed HTTP answer."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.chunks: list[bytes] = []
        self.complete = False

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


class Reader:
    """Reads answers off a connection as they arrive (httptools' response parser)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.answers: list[Answer] = []
        self.parser = httptools.HttpResponseParser(self)
        self.eof = False

    def on_message_begin(self) -> None:
        self.answers.append(Answer())

    def on_header(self, name: bytes, value: bytes) -> None:
        self.answers[-1].headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.answers[-1].status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.answers[-1].chunks.append(body)

    def on_message_complete(self) -> None:
        self.answers[-1].complete = True

    async def feed(self) -> None:
        async with asyncio.timeout(10):  # fail, not hang, when an answer never comes
            data = await self.reader.read(65536)
        if not data:
            self.eof = True
            return
        self.parser.feed_data(data)

    async def until(self, done: int, chunks: int = 0) -> list[Answer]:
        """Read until ``done`` answers are complete (or the last has ``chunks`` chunks)."""
        while not self.eof:
            complete = sum(a.complete for a in self.answers)
            if complete >= done:
                break
            if chunks and self.answers and len(self.answers[-1].chunks) >= chunks:
                break
            await self.feed()
        return self.answers


def request(body: bytes, *, path: str = "/v1/chat/completions", extra: bytes = b"") -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n%s\r\n%s" % (path.encode(), len(body), extra, body)
    )


@asynccontextmanager
async def running(
    settings: GatewaySettings | None = None, upstream: GatedUpstream | None = None
) -> AsyncIterator[tuple[HttpServer[RequestHead], int, GatedUpstream]]:
    upstream = upstream or GatedUpstream()
    perf = PerformanceOrchestrator(nodes=[NodeSpec(id="n0", models=["m"])], upstream=upstream)
    app = GatewayApp(perf, settings)
    server = gateway_server(app)
    port = await server.start("127.0.0.1", 0)
    try:
        yield server, port, upstream
    finally:
        await server.shutdown(0)
        await app.shutdown()


@asynccontextmanager
async def connect(port: int) -> AsyncIterator[tuple[Reader, asyncio.StreamWriter]]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield Reader(r), w
    finally:
        w.close()
