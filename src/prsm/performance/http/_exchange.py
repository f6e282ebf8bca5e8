"""One request and its answer on the server core: :class:`ServerExchange`.

The request's method, path, parsed head and whole body (buffered by the connection up to
the server's ``max_body``); the answer whole (:meth:`~ServerExchange.respond`), or as a
stream (:meth:`~ServerExchange.begin`, :meth:`~ServerExchange.send`,
:meth:`~ServerExchange.finish`). Those never wait: a handler that answers at once needs no
task. The ``async`` forms (``reply``, ``start``, ``write``, ``end``) are the gateway's exchange
interface; ``write`` waits while the client's socket buffer is full (back-pressure).

A stream to an HTTP/1.1 client is chunked; an HTTP/1.0 client knows no chunks, so its stream
is close-delimited (no length, ``connection: close``, the connection closes at its end).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Generic, TypeVar

from ..errors import PayloadTooLargeError
from ._wire import CHUNKED, CHUNKED_LINE, CLOSE, LAST_CHUNK, Headers, chunk, head

if TYPE_CHECKING:
    from ._connection import ServerConnection

H = TypeVar("H")
#: the most bytes a stream's pieces wait for the end of a loop turn before they are written
_HELD_BYTES = 65536
#: a whole 200 answer on a kept connection: the head's lines, then the body
_OK_ANSWER = b"HTTP/1.1 200 OK\r\n%s\r\n%s"
#: a chunked 200 stream's head: the head's lines, then (closing) ``connection: close``
_OK_CHUNKED = b"HTTP/1.1 200 OK\r\n%s" + CHUNKED_LINE + b"%s\r\n"
_METHODS = {m.encode(): m for m in ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH")}


class ServerExchange(Generic[H]):
    """One request on a :class:`~._connection.ServerConnection`, and its answer."""

    __slots__ = ("_flushing", "_pending", "body_bytes", "chunked", "conn", "done", "head",
                 "http10", "keep_alive", "method", "path", "query", "size", "status")  # fmt: skip

    def __init__(
        self,
        conn: ServerConnection[H],
        head: H,
        body: bytes,
        size: int,
        keep_alive: bool,
    ) -> None:
        self.conn = conn
        method = conn.parser.get_method()
        self.method: str = _METHODS.get(method) or method.decode("latin-1")
        path, _, query = conn.url.partition(b"?")
        self.path: str = path.decode("latin-1")
        self.query: bytes = query
        self.head: H = head
        self.body_bytes = body
        self.size = size  # bytes of body announced or received (over max_body: refused)
        self.keep_alive = keep_alive
        self.http10: bool = conn.http10
        self.done = False  # a whole answer (or a stream's end) was written
        self.status = 0
        self.chunked = False
        self._pending = b""  # a stream's head and pieces, not yet written
        self._flushing = False  # a write of _pending is due at the end of this loop turn

    @property
    def client(self) -> str | None:
        """The client's address (as the socket names its peer), or ``None``."""
        peer = self.conn.transport.get_extra_info("peername")
        return str(peer[0]) if peer else None

    @property
    def too_large(self) -> bool:
        """The body is over the server's ``max_body`` (it was not kept)."""
        return self.size > self.conn.server.max_body

    def whole_body(self, limit: int) -> bytes:
        """The whole request body (it has arrived); :class:`PayloadTooLargeError` past
        ``limit`` bytes."""
        if self.size > limit:
            raise PayloadTooLargeError(self.size, limit)
        return self.body_bytes

    async def body(self, limit: int) -> bytes:
        """:meth:`whole_body`, as the gateway's exchange interface asks for it."""
        return self.whole_body(limit)

    def _closing(self) -> bool:
        """Whether the connection closes after this answer (then it says so)."""
        if not self.keep_alive or self.conn.server.closing:
            self.keep_alive = False
            return True
        return False

    def _check(self) -> ServerConnection[H]:
        conn = self.conn
        if conn.closed:
            raise ConnectionResetError("client went away before its answer was done")
        return conn

    # --- answers that never wait
    def respond(self, status: int, headers: Headers | bytes, body: bytes) -> None:
        """Answer whole, in one write (``headers`` include the content type and length; as
        pairs, or as header lines already made)."""
        conn = self.conn
        if conn.closed:
            raise ConnectionResetError("client went away before its answer")
        close = not self.keep_alive or conn.server.closing
        transport = conn.transport
        if status == 200 and not close and not self.http10 and type(headers) is bytes:
            if len(body) < 65536 and self.method != "HEAD":  # the common answer: one format
                transport.write(_OK_ANSWER % (headers, body))
                self.status = status
                self.done = True
                return
        elif close:
            self.keep_alive = False
        data = head(status, headers, close=close, keep_alive_10=self.http10)
        if self.method == "HEAD":
            transport.write(data)  # the length of what a GET would answer, no body
        elif len(body) < 65536:
            transport.write(data + body)
        else:
            transport.writelines((data, body))
        self.status = status
        self.done = True

    def respond_ok(self, whole: bytes, lines: bytes, values: tuple[object, ...]) -> None:
        """Answer 200 whole, formatted once: ``values`` are the head lines' values, then the
        body (last); ``lines % values[:-1]`` are the head lines (with the content type and
        length), and ``whole % values`` the same answer on a kept HTTP/1.1 connection
        (``HTTP/1.1 200 OK``, the lines, a blank line, the body): the common case, one
        formatting and one write. Otherwise as :meth:`respond`."""
        conn = self.conn
        body: bytes = values[-1]  # type: ignore[assignment]
        if (
            self.keep_alive
            and not conn.closed
            and not self.http10
            and not conn.server.closing
            and len(body) < 65536
            and self.method != "HEAD"
        ):
            conn.transport.write(whole % values)
            self.status = 200
            self.done = True
            return
        self.respond(200, lines % values[:-1], body)

    def begin(self, status: int, headers: Headers | bytes) -> None:
        """Start a streamed answer (``headers`` as pairs, or as header lines already made);
        its head leaves with the first chunk."""
        self._check()
        if self.http10:  # close-delimited: the end of the stream is the end of the connection
            self.keep_alive = False
            self._pending = head(status, headers, close=True)
        elif status == 200 and type(headers) is bytes:  # the common head: one format
            self.chunked = self.method != "HEAD"
            self._pending = _OK_CHUNKED % (headers, CLOSE if self._closing() else b"")
        else:
            self.chunked = self.method != "HEAD"
            if isinstance(headers, bytes):
                headers += CHUNKED_LINE
            else:
                headers = [*headers, CHUNKED]
            self._pending = head(status, headers, close=self._closing())
        self.status = status

    def send(self, data: bytes) -> None:
        """Send one piece of a stream as it is (one chunk). It is written when this turn of
        the event loop ends, with whatever else the stream sends in the same turn (and its
        end, when :meth:`finish` comes in the same turn): one write, not one per piece, for
        an upstream's burst; nothing waits longer than the turn."""
        self._check()
        if self.method == "HEAD":
            data = b""
        out = chunk(data) if self.chunked else data
        if out:
            self._pending += out
            if len(self._pending) > _HELD_BYTES:  # a stream that does not wait: written now,
                self._flushing = True  # so a client that reads slowly holds it back
                self.flush()
                return
        elif not self._pending:
            return
        if not self._flushing:
            self._flushing = True
            self.conn.loop.call_soon(self.flush)

    def hold(self, data: bytes) -> bool:
        """Add one piece of a stream (one chunk) to what goes out next, without a write of
        its own: the caller writes what is held (:meth:`write_held`) before it waits for the
        next piece, or ends the stream (:meth:`finish`: one write with the end); the server
        writes it if the handler stops first. Past 64 KB held it is written now, so that a
        client that reads slowly holds the stream back. Whether the writer must wait for the
        client's socket buffer to drain before it goes on."""
        conn = self.conn
        if conn.closed:
            raise ConnectionResetError("client went away before its answer was done")
        if data and self.method != "HEAD":
            self._pending += b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data
        if self._pending:
            self._flushing = True  # (written by flush() if the handler stops first)
            if len(self._pending) > _HELD_BYTES:
                self.flush()
        return conn.write_paused

    def write_held(self) -> None:
        """Write what :meth:`hold` left, now (before the caller waits)."""
        if self._flushing:
            self.flush()

    def flush(self) -> None:
        """Write what :meth:`send` left for the end of this turn now (the connection does,
        before it closes or goes on; also at the end of the turn)."""
        if not self._flushing:
            return
        self._flushing = False
        data = self._pending
        self._pending = b""
        if data and not self.conn.closed:
            self.conn.transport.write(data)

    def send_all(self, pieces: Iterable[bytes]) -> None:
        """Send several pieces of a stream, one chunk each, in one write."""
        conn = self._check()
        parts = [self._pending]
        self._pending = b""
        self._flushing = False
        if self.method != "HEAD":
            parts.extend(chunk(p) if self.chunked else p for p in pieces)
        conn.transport.write(b"".join(parts))

    def finish(self) -> None:
        """End a stream (an HTTP/1.0 client's connection then closes)."""
        conn = self._check()
        data = self._pending + (LAST_CHUNK if self.chunked else b"")
        self._pending = b""
        self._flushing = False  # all of it goes now
        if data:
            conn.transport.write(data)
        self.done = True

    def abort(self) -> None:
        """Drop the connection without an answer (a fault a simulator injects): the client
        sees it end, after what was sent so far."""
        self.flush()
        self.conn.abort(reset=False)

    @property
    def must_wait(self) -> bool:
        """The client's socket buffer is full: a writer should wait (:meth:`write` does)."""
        return self.conn.write_paused

    # --- the gateway's exchange interface
    async def reply(self, status: int, headers: Headers | bytes, body: bytes) -> None:
        self.respond(status, headers, body)

    async def start(self, status: int, headers: Headers | bytes) -> None:
        self.begin(status, headers)

    async def write(self, chunk: bytes) -> None:
        """Send one chunk; waits while the client's socket buffer is full."""
        self.send(chunk)
        conn = self.conn
        if conn.write_paused:
            await conn.drained()

    async def end(self) -> None:
        self.finish()

    def disconnected(self) -> asyncio.Future[None]:
        """A future done once the client has gone away (cheaper than a task per stream)."""
        return self.conn.lost()
