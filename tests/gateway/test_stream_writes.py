"""How a stream leaves on the gateway's own server: pieces that are ready together go in one
write (a stream whose end came with its chunks: head, chunks and end at once); a piece the
next one has to wait for is written before that wait; a client that reads slowly is waited
for before the next chunk is asked for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from prsm.performance.gateway._app import GatewayApp
from prsm.performance.gateway._asgi import RequestHead
from prsm.performance.gateway._exchange import NativeExchange
from prsm.performance.gateway._settings import GatewaySettings, TenantSettings, hash_key
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.routing._node import NodeSpec
from prsm.performance.types import AIRequest, Response

BODY = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                     "stream": True})  # fmt: skip
EVENTS = [b'data: {"i": 0}\n\n', b'data: {"i": 1}\n\n', b"data: [DONE]\n\n"]


class Upstream:
    """Streams ``events``; with ``gate``, each event after the first waits for a release."""

    def __init__(
        self, gate: asyncio.Queue[None] | None = None, events: list[bytes] | None = None
    ) -> None:
        self.gate = gate
        self.events = EVENTS if events is None else events

    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        return Response(content={})

    async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        for i, event in enumerate(self.events):
            if i and self.gate is not None:
                await self.gate.get()
            yield event


class Transport:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.writes: list[bytes] = []
        self.wrote = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.wrote.set()
        self.conn.on_write(data)

    async def until(self, n: int) -> None:
        """Until ``n`` writes were made."""
        while len(self.writes) < n:
            self.wrote.clear()
            await self.wrote.wait()


class Parser:
    def get_method(self) -> bytes:
        return b"POST"


class Server:
    closing = False
    max_body = 1 << 20


class Conn:
    """What an exchange uses of its server connection; ``slow``: the client's buffer is full
    after each write until ``drained`` is awaited (counted)."""

    def __init__(self, slow: bool = False) -> None:
        self.parser = Parser()
        self.url = b"/v1/chat/completions"
        self.http10 = False
        self.closed = False
        self.server = Server()
        self.loop = asyncio.get_running_loop()
        self.transport = Transport(self)
        self.slow = slow
        self.write_paused = False
        self.waits: list[int] = []  # writes done when each wait for the client began

    def on_write(self, data: bytes) -> None:
        if self.slow:
            self.write_paused = True

    async def drained(self) -> None:
        self.waits.append(len(self.transport.writes))
        self.write_paused = False


def _app(upstream: Upstream, settings: GatewaySettings | None = None) -> GatewayApp:
    nodes = [NodeSpec(id="n0", models=frozenset({"m"}))]
    return GatewayApp(PerformanceOrchestrator(nodes=nodes, upstream=upstream), settings)


async def _serve(app: GatewayApp, conn: Conn, headers: tuple[tuple[bytes, bytes], ...] = ()) -> Any:
    head = RequestHead.from_list(0.0, [(b"content-length", b"%d" % len(BODY)), *headers])
    x = NativeExchange(conn, head, BODY, len(BODY), True)  # type: ignore[arg-type]
    await app.handle_exchange(x)
    return x


async def test_a_stream_whose_chunks_are_ready_together_leaves_in_one_write() -> None:
    conn = Conn()
    x = await _serve(_app(Upstream()), conn)
    (write,) = conn.transport.writes
    assert write.startswith(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n")
    assert b"transfer-encoding: chunked\r\n\r\n" in write
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in EVENTS)
    assert write.endswith(b"\r\n\r\n" + chunks + b"0\r\n\r\n")
    assert x.done and x.status == 200


async def test_a_piece_is_written_before_the_next_one_is_waited_for() -> None:
    gate: asyncio.Queue[None] = asyncio.Queue()
    conn = Conn()
    app = _app(Upstream(gate))
    serving = asyncio.ensure_future(_serve(app, conn))
    for n in (1, 2):
        await conn.transport.until(n)  # the head and event n-1 went out alone
        assert conn.transport.writes[-1].endswith(b"%x\r\n%s\r\n" % (len(EVENTS[n - 1]),
                                                                     EVENTS[n - 1]))  # fmt: skip
        gate.put_nowait(None)
    await serving
    assert conn.transport.writes[-1] == b"%x\r\n%s\r\n0\r\n\r\n" % (len(EVENTS[2]), EVENTS[2])


async def test_a_slow_client_is_waited_for_before_the_next_chunk_is_asked_for() -> None:
    gate: asyncio.Queue[None] = asyncio.Queue()
    conn = Conn(slow=True)
    serving = asyncio.ensure_future(_serve(_app(Upstream(gate)), conn))
    await conn.transport.until(1)
    gate.put_nowait(None)
    gate.put_nowait(None)
    await serving
    # the first write left the client's buffer full: the next chunk was held until it
    # drained, and the one after it was asked for only then (ready: one write with the end)
    assert conn.waits == [1]
    assert len(conn.transport.writes) == 2
    assert conn.transport.writes[1].endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")


async def test_past_64_kb_held_a_stream_is_written_at_once() -> None:
    big = b'data: {"x": "%s"}\n\n' % (b"y" * 70_000)
    conn = Conn()
    await _serve(_app(Upstream(events=[big, EVENTS[-1]])), conn)
    first, rest = conn.transport.writes
    assert first.endswith(b"%x\r\n%s\r\n" % (len(big), big))  # with the head, at once
    assert rest == b"%x\r\n%s\r\n0\r\n\r\n" % (len(EVENTS[-1]), EVENTS[-1])


async def test_a_tenants_token_bucket_is_charged_for_events_not_for_data_in_their_text() -> None:
    events = [b'data: {"c": "data: x"}\n\n', b'data: {"c": "da', b'ta:"}\n\n', EVENTS[-1]]
    tenant = TenantSettings("t", (hash_key("sk-t"),), tokens_per_minute=600)
    app = _app(Upstream(events=events), GatewaySettings(tenants=(tenant,)))
    charged: list[int] = []

    async def charge(tenant: TenantSettings, tokens: int) -> None:
        charged.append(tokens)

    app.limiter.charge = charge  # type: ignore[method-assign]
    conn = Conn()
    x = await _serve(app, conn, ((b"authorization", b"Bearer sk-t"),))
    assert x.status == 200
    assert charged == [3]  # the three ``data:`` lines (``[DONE]`` too), not the text's
