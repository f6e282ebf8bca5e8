"""One HTTP/1.1 client connection on an asyncio protocol, answers parsed by httptools (the
parser uvicorn uses): :class:`ClientConnection` carries one request at a time and reads its
answer whole (status, headers, body) or chunk by chunk as it arrives (reading pauses while 64
chunks wait). :class:`~._client.HttpPool` pools them per origin; the benchmarks' load
generator drives them directly (:func:`open_connection`, ``on_done``)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httptools
import msgspec

from .._awaiting import arm_in, disarm, expired
from ..errors import ConnectionFailed

if TYPE_CHECKING:
    from ._client import HttpPool

MAX_QUEUED_CHUNKS = 64
_FRAMING = (b"content-length", b"transfer-encoding")
_FRAMING_LENGTHS = frozenset(len(n) for n in _FRAMING)
_MAX_HEADERS = 100
_MAX_HEADER_BYTES = 65536


class ClientResponse(msgspec.Struct, eq=False):
    """An answer's status, headers (as sent, in order; :meth:`header` finds one by its
    lower-case name) and body. A struct (made in C: one a request, at half the cost of a
    class with an ``__init__``); compared by identity, as an object."""

    status: int = 0
    headers: list[tuple[bytes, bytes]] = []  # (a new list for each answer made without)
    body: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        """The last value of header ``name`` (give it in lower case), or ``None``."""
        for n, v in reversed(self.headers):
            if len(n) == len(name) and n.lower() == name:
                return v
        return None


class ClientConnection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time. ``on_done`` (if given) is
    called with the connection when an answer is complete or the connection fails."""

    __slots__ = ("body", "chunks", "closed", "complete", "eof", "error", "framed",
                 "header_bytes", "headers", "headers_done", "idle_since", "keep_alive", "loop",
                 "on_body", "on_done", "parser", "paused", "pool", "received", "sent", "status",
                 "streaming", "tag", "transport", "waiter")  # fmt: skip

    def __init__(
        self,
        pool: HttpPool | None = None,
        on_done: Callable[[ClientConnection], None] | None = None,
    ) -> None:
        self.pool = pool
        self.on_done = on_done
        self.tag: Any = None  # whatever the owner keeps with the connection
        # the parser's body callback is the body list's own append (no Python frame per
        # piece: a stream's every event is a piece); one list for the connection's life.
        # A stream's pieces go on to its queue once per read (:meth:`_deliver`)
        self.body: list[bytes] = []
        self.on_body: Callable[[bytes], None] = self.body.append
        self.parser = httptools.HttpResponseParser(self)
        self.transport: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the one it was opened on
        self.closed = False
        self.eof = False  # the server shut its side
        self.idle_since = 0.0
        self.sent = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.keep_alive = True
        self.received = False
        self.complete = False
        self.streaming = False
        self.chunks: collections.deque[bytes] = collections.deque()
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.headers_done = False
        self.framed = False  # the answer says where it ends (Content-Length or chunked)
        self.error: ConnectionFailed | None = None

    # --- protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.pool is not None:
            self.pool.forget(self)
        if self.headers_done and not self.framed and not self.complete and exc is None:
            self.complete = True  # an answer without a length ends when the server closes
            self.keep_alive = False
            self._wake()
            return
        if self.sent and not self.complete and self.error is None:
            why = f"connection closed by the server ({exc})" if exc else "connection closed"
            self.error = ConnectionFailed(why, received=self.received)
            self._wake()

    def eof_received(self) -> bool:
        self.eof = True  # never reused; a close-delimited answer ends at connection_lost
        return False

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("the server switched protocols")
            return
        except httptools.HttpParserError as exc:
            self._fail(f"malformed HTTP answer: {exc}")
            return
        if not self.headers_done:  # a head still coming: bounded (a server may not end it)
            self.header_bytes += len(data)
            if self.header_bytes > _MAX_HEADER_BYTES or len(self.headers) > _MAX_HEADERS:
                self._fail("the answer's header section is too large")
        elif self.body and self.streaming and self.status == 200:
            self._deliver()

    def _fail(self, message: str) -> None:
        self.error = ConnectionFailed(message, received=True)
        self.close()
        self._wake()

    # --- parser callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))  # as sent: lower-cased when looked up
        if len(name) in _FRAMING_LENGTHS and name.lower() in _FRAMING:
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True
        if self.streaming:
            self._wake()

    def _deliver(self) -> None:
        """A streamed 200 answer's pieces the parser put in ``body`` (one read's) go on to
        the reader's queue: one wake-up for the burst; reading pauses while too many wait."""
        chunks = self.chunks
        wake = not chunks  # the reader waits only on an empty queue
        chunks.extend(self.body)
        self.body.clear()
        if wake:
            self._wake()
        if len(chunks) > MAX_QUEUED_CHUNKS and not self.paused and self.transport:
            self.transport.pause_reading()
            self.paused = True

    def on_message_complete(self) -> None:
        if self.body and self.streaming and self.status == 200:
            self._deliver()  # before the end is told (``on_done`` is called at once)
        self.complete = True
        self._wake()

    # --- use
    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)
        if self.on_done is not None and (self.complete or self.error is not None):
            self.on_done(self)

    @property
    def reusable(self) -> bool:
        return self.keep_alive and not self.closed and not self.eof

    def send(self, data: bytes, *, streaming: bool = False) -> None:
        """Write a whole request (head and body)."""
        self.status = 0
        self.received = False
        self.complete = False
        self.headers_done = False
        self.framed = False
        self.headers = []
        self.header_bytes = 0
        self.body.clear()
        self.chunks.clear()
        self.streaming = streaming
        self.error = None
        self.sent = True
        self.transport.write(data)

    def response(self) -> ClientResponse:
        body = self.body
        return ClientResponse(
            self.status, self.headers, body[0] if len(body) == 1 else b"".join(body)
        )

    def waiting(self) -> asyncio.Future[None]:
        """A new future, done when something happens (headers, a chunk, the end, a
        failure), for the caller to await: what :meth:`wait` does with no time limit, without
        a coroutine of its own (the future stays ``waiter`` until the next; once done, a
        wake-up passes it by)."""
        loop = self.loop
        if loop is None:  # asked once a connection (a system call each time in Python 3.11)
            loop = self.loop = asyncio.get_running_loop()
        waiter = self.waiter = loop.create_future()
        return waiter

    async def wait(self, within: float | None = None) -> None:
        """Until something happens (headers, a chunk, the end, a failure); ``TimeoutError``
        after ``within`` seconds of nothing (at most a tick of the shared deadline timers
        later: :func:`~prsm.performance._awaiting.arm`, not a loop timer per wait)."""
        waiter = self.waiting()
        loop = self.loop
        assert loop is not None
        try:
            if within is None:
                await waiter
                return
            armed = arm_in(loop, within)
            if armed is None:  # not in a task: the standard way
                try:
                    async with asyncio.timeout(within):
                        await waiter
                except TimeoutError:
                    raise TimeoutError(f"no byte from the server within {within}s") from None
                return
            try:
                await waiter
            except asyncio.CancelledError:
                if expired(armed):
                    raise TimeoutError(f"no byte from the server within {within}s") from None
                raise
            finally:
                disarm(armed)
        finally:
            self.waiter = None

    def resume(self) -> None:
        if self.paused and len(self.chunks) < MAX_QUEUED_CHUNKS // 4:
            self.paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


async def open_connection(
    host: str,
    port: int,
    *,
    on_done: Callable[[ClientConnection], None] | None = None,
) -> ClientConnection:
    """One plain connection (the load generator's: no pool, no proxy, no TLS)."""
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(lambda: ClientConnection(on_done=on_done), host, port)
    return conn
