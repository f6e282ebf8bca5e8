"""The gateway's own HTTP/1.1 server: an asyncio protocol with httptools' parser, on uvloop.

It drives the same :class:`~.app.GatewayApp` request logic as the ASGI adapter, through
:class:`NativeExchange`, with nothing between the socket and the app but the parser:
the headers the app reads are picked out as they are parsed, the body is buffered as it
arrives (up to the app's ``max_body_bytes``), a whole answer leaves in one write and a
stream's chunks are framed (``Transfer-Encoding: chunked``) and written as the node sends
them, waiting while the client's socket buffer is full.

Per connection: keep-alive, pipelined requests answered in order (reading pauses while
too many wait), ``Expect: 100-continue``, malformed HTTP answered 400 and the connection
closed. A body over the limit is handed to the app at once (which answers 413); the rest
of it is read and dropped for up to a second so the client sees the answer, then the
connection closes. :meth:`~.native_run.NativeServer.shutdown` stops accepting, closes
idle connections, lets in-flight requests and streams finish within the grace period, then
closes the rest.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import httptools

from ..errors import PayloadTooLargeError
from ..gateway._asgi import RequestHead
from ..gateway._exchange import Exchange, Headers
from ..gateway._responses import error_body

if TYPE_CHECKING:
    from ..serve._processes import NativeServer

log = logging.getLogger(__name__)

Handler = Callable[[Exchange], Awaitable[None]]

_REASONS = {int(s): s.phrase.encode("latin-1") for s in HTTPStatus}
_WANTED = frozenset(
    {b"authorization", b"x-api-key", b"cache-control", b"content-length", b"x-request-id",
     b"host", b"origin"}  # host, origin: the admin API's local-caller check
)  # fmt: skip
#: pipelined requests waiting on one connection before it stops reading
MAX_PIPELINED = 32
#: how long the rest of a refused (too large) body is read and dropped before closing
DISCARD_SECONDS = 1.0
_CLOSE = b"connection: close\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CHUNKED = b"transfer-encoding: chunked\r\n"
_LAST_CHUNK = b"0\r\n\r\n"


def _head(status: int, headers: Headers, close: bool) -> bytes:
    lines = [b"%s: %s\r\n" % kv for kv in headers]
    if close:
        lines.append(_CLOSE)
    reason = _REASONS.get(status, b"Unknown")
    return b"HTTP/1.1 %d %s\r\n%s\r\n" % (status, reason, b"".join(lines))


class NativeExchange:
    """One request on a :class:`GatewayProtocol` connection (the app's exchange interface)."""

    __slots__ = ("_body", "_pending", "conn", "done", "head", "keep_alive", "method", "path",
                 "size", "status")  # fmt: skip

    def __init__(
        self, conn: GatewayProtocol, head: RequestHead, body: bytes, size: int, keep_alive: bool
    ) -> None:
        self.conn = conn
        self.method: str = conn.parser.get_method().decode("latin-1")
        self.path: str = conn.url.split(b"?", 1)[0].decode("latin-1")
        self.head = head
        self._body = body
        self.size = size  # bytes of body announced or received (over the limit: refused)
        self.keep_alive = keep_alive
        self.done = False  # a whole answer (or a stream's end) was written
        self.status = 0
        self._pending = b""  # a stream's head, not yet written

    async def body(self, limit: int) -> bytes:
        """The whole request body; :class:`PayloadTooLargeError` past ``limit`` bytes."""
        if self.size > limit:
            raise PayloadTooLargeError(self.size, limit)
        return self._body

    def _close_after(self) -> bool:
        return not self.keep_alive or self.conn.server.closing

    async def reply(self, status: int, headers: Headers, body: bytes) -> None:
        """Answer whole, in one write (``headers`` include the content type and length)."""
        conn = self.conn
        if conn.closed:
            raise ConnectionResetError("client went away before its answer")
        close = self._close_after()
        head = _head(status, headers, close)
        transport = conn.transport
        if self.method == "HEAD":
            transport.write(head)  # the length of what a GET would answer, no body
        elif len(body) < 65536:
            transport.write(head + body)
        else:
            transport.writelines((head, body))
        self.status = status
        self.done = True

    async def start(self, status: int, headers: Headers) -> None:
        """Start a streamed answer (chunked). Its head leaves with the first chunk, which the
        app writes at once: one write less per stream."""
        if self.conn.closed:
            raise ConnectionResetError("client went away before its answer")
        headers = [*headers, (b"transfer-encoding", b"chunked")]
        self._pending = _head(status, headers, self._close_after())
        self.status = status
        self.head.started = True

    async def write(self, chunk: bytes) -> None:
        """Send one chunk as it is; waits while the client's socket buffer is full."""
        conn = self.conn
        if conn.closed:
            raise ConnectionResetError("client went away mid-stream")
        data = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunk else b""
        if self._pending:
            data = self._pending + data
            self._pending = b""
        if data:
            conn.transport.write(data)
            if conn.write_paused:
                await conn.drained()

    async def end(self) -> None:
        conn = self.conn
        if conn.closed:
            raise ConnectionResetError("client went away mid-stream")
        conn.transport.write(self._pending + _LAST_CHUNK)
        self._pending = b""
        self.done = True

    def disconnected(self) -> asyncio.Future[None]:
        """A future done once the client has gone away (cancelling it changes nothing else:
        cheaper than a task per stream)."""
        return self.conn.lost()


class GatewayProtocol(asyncio.Protocol):
    """One client connection: parses requests, hands each to the app in order."""

    def __init__(self, server: NativeServer) -> None:
        self.server = server
        self.handler = server.handler
        self.limit = server.max_body
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.closed = False
        self.reading = True  # False once the connection will close: further bytes dropped
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.head: RequestHead | None = None
        self.expect = False
        self.refused: NativeExchange | None = None  # a too-large request handed on early
        self.refused_read = False  # ... whose body has been read (and dropped) to its end
        self.queue: collections.deque[NativeExchange] = collections.deque()
        self.task: asyncio.Task[None] | None = None
        self.paused_reading = False
        self.write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._lost: list[asyncio.Future[None]] = []

    # --- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        for waiter in (self._drain, *self._lost):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self._lost.clear()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self._drain
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        if not self.reading:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._bad_request("protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._bad_request(f"malformed HTTP request: {exc}")

    def _bad_request(self, message: str) -> None:
        """Answer 400 once what came before is answered, and close."""
        self.reading = False
        body = error_body(message, "invalid_request_error", code="bad_request")
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", b"%d" % len(body))]  # fmt: skip
        data = _head(400, headers, True) + body
        if self.task is None:
            self.transport.write(data)
            self.transport.close()
        else:
            self.queue.clear()
            self.task.add_done_callback(lambda _: self._write_and_close(data))

    def _write_and_close(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)
            self.transport.close()

    # --- waiting on the connection
    async def drained(self) -> None:
        """Until the client's socket buffer has room again (or the connection is gone)."""
        if self.closed:
            return
        self._drain = asyncio.get_running_loop().create_future()
        try:
            await self._drain
        finally:
            self._drain = None

    def lost(self) -> asyncio.Future[None]:
        """A new future, done when the connection is gone."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.closed:
            waiter.set_result(None)
        else:
            self._lost = [w for w in self._lost if not w.done()]
            self._lost.append(waiter)
        return waiter

    # --- httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.body = []
        self.size = 0
        self.head = None
        self.expect = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        n = name.lower()
        if n in _WANTED:
            self.headers.append((n, value))
        elif n == b"expect" and value.lower() == b"100-continue":
            self.expect = True

    def on_headers_complete(self) -> None:
        if not self.reading:
            return
        head = self.head = RequestHead.from_list(time.perf_counter(), self.headers)
        if head.length is not None and head.length > self.limit:
            self._refuse(head.length)
        elif self.expect:
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self.refused is not None:
            return  # dropped: the answer is 413
        self.size += len(body)
        if self.size > self.limit:
            self.body = []
            self._refuse(self.size)
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        if not self.reading:
            return
        refused = self.refused
        if refused is not None:  # nothing after it is read: the connection closes
            self.refused_read = True
            self.reading = False
            if refused.done:  # answered already: close now
                self._close()
            return
        body = self.body
        head = self.head
        assert head is not None
        x = NativeExchange(
            self,
            head,
            body[0] if len(body) == 1 else b"".join(body),
            self.size,
            self.parser.should_keep_alive(),
        )
        self._enqueue(x)

    def _refuse(self, size: int) -> None:
        """Hand a request whose body is over the limit to the app now (it answers 413), then
        drop the rest of the body and close the connection."""
        head = self.head
        assert head is not None
        x = NativeExchange(self, head, b"", size, False)
        self.refused = x
        self._enqueue(x)

    # --- answering, in order
    def _enqueue(self, x: NativeExchange) -> None:
        if not self.reading:
            return
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run(x))
            return
        self.queue.append(x)
        if len(self.queue) >= MAX_PIPELINED and not self.paused_reading:
            self.paused_reading = True
            self.transport.pause_reading()

    async def _run(self, x: NativeExchange) -> None:
        server = self.server
        try:
            while True:
                server.in_flight += 1
                try:
                    await self.handler(x)
                finally:
                    server.in_flight -= 1
                if server.access_log:
                    log.info("%s %s %d", x.method, x.path, x.status)
                if not x.done or not x.keep_alive or server.closing:
                    self._finish(x)
                    return
                queue = self.queue
                if not queue or self.closed:
                    break
                x = queue.popleft()
                if self.paused_reading and len(queue) < MAX_PIPELINED // 2:
                    self.paused_reading = False
                    self.transport.resume_reading()
        except BaseException:
            self._close()
            raise
        finally:
            self.task = None
            server.request_done()

    def _finish(self, x: NativeExchange) -> None:
        """After an answer on a connection that closes: a refused body is first read and
        dropped (so the client reads the 413 instead of a reset), for a bounded time."""
        if x is self.refused and x.done and not self.closed and not self.refused_read:
            self.queue.clear()
            asyncio.get_running_loop().call_later(DISCARD_SECONDS, self._close)
            return
        self._close()

    def _close(self) -> None:
        self.reading = False
        self.queue.clear()
        if not self.closed:
            self.closed = True  # writes from now on raise ConnectionResetError
            self.transport.close()
