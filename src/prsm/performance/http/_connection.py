"""One client connection to the server core: an asyncio protocol with httptools' parser.

Reading: the URL, the header section (size and count) and the body are capped as they arrive
(414, 431, and the app's 413); the head must arrive within ``header_timeout`` of its first
byte and the body within ``body_timeout`` of the head (408); an idle connection closes after
``keep_alive_timeout``. The server's sweep (:meth:`ServerConnection.check`) enforces the
times against the clock it reads once a tick (a timeout fires at most two ticks late, never
early), so a request costs no timer and no clock reading.

Answering: a request whose handler must wait is answered by the connection's worker task,
made once and kept between requests (one task a connection, not one a request: a task costs
about a microsecond to make and register); pipelined requests are answered in order (reading
pauses while too many wait);
after an answer that the client has not read (its socket buffer full), the next waits for it,
and an answer stuck longer than ``write_timeout`` drops the connection. A malformed request
after good ones is answered 400 once they are answered, then the connection closes.
``Expect: 100-continue`` gets its go-ahead when the request is the next to be answered (an
HTTP/1.0 client's is ignored). A client that half-closes (sends its request, then shuts its
side) still gets its answers, then the connection closes. Closing after an error first
half-closes and drops what the client still sends for a moment, so it reads the answer
rather than a reset.

(One protocol class, in one file of about 500 lines: every method reads and changes the same
per-connection state, which is easier to check kept together.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httptools

from ._exchange import ServerExchange
from ._wire import CONTINUE, EXPECT, LENGTH, NOTED, error_answer

if TYPE_CHECKING:
    from ._server import HttpServer

H = TypeVar("H")

log = logging.getLogger(__name__)
access = logging.getLogger("prsm.performance.http.access")

#: how long a closing connection drops what the client still sends before it closes
LINGER_SECONDS = 1.0
IDLE, HEAD, BODY, DONE = 0, 1, 2, 3  # what is being read
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets the connection


class _Reject(Exception):
    """Raised in a parser callback to stop reading: the request is answered ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ServerConnection(asyncio.Protocol, Generic[H]):
    """One client connection: parses requests, hands each to the handler in order."""

    __slots__ = ("_drain", "_lost", "begun", "body", "closed", "continue_pending", "eof",
                 "expect", "fail_after", "handler", "head", "head_bytes", "header_bytes",
                 "header_count", "headers", "http10", "idle_since", "keep_all", "known", "length",
                 "loop", "max_header_bytes", "max_headers", "names", "parked", "parser",
                 "paused_reading", "paused_since", "phase", "queue", "queued_bytes", "reading",
                 "refused", "server", "settings", "since", "size", "task", "transport", "url",
                 "worker", "write_paused")  # fmt: skip

    def __init__(self, server: HttpServer[H]) -> None:
        self.server = server
        self.settings = server.settings
        self.handler = server.handler
        self.names = server.header_names or frozenset()
        self.keep_all = server.header_names is None
        self.known = server.header_table
        self.max_headers = server.settings.max_headers
        self.max_header_bytes = server.settings.max_header_bytes
        self.loop = server.loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.closed = False  # no more answers: closing or gone
        self.reading = True  # False once nothing more is parsed (what arrives is dropped)
        self.eof = False  # the client shut its side
        now = server.now
        self.phase = IDLE
        self.since = now  # when the phase began (when closing: when the close began)
        self.idle_since = now
        self.begun = 0  # requests begun
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_count = 0
        self.header_bytes = 0
        self.head_bytes = 0
        self.length: bytes | None = None
        self.expect = False
        self.http10 = False
        self.body: list[bytes] = []
        self.size = 0
        self.head: Any = None
        self.refused: ServerExchange[H] | None = None  # a too-large request handed on early
        self.queue: collections.deque[ServerExchange[H]] = collections.deque()
        self.queued_bytes = 0
        self.task: asyncio.Task[None] | None = None  # the worker, while a request is answered
        #: the connection's task, which answers one request after another (made at the first
        #: that must wait); between requests it waits on ``parked`` for the next one
        self.worker: asyncio.Task[None] | None = None
        self.parked: asyncio.Future[tuple[ServerExchange[H], Awaitable[None]] | None] | None = None
        self.paused_reading = False
        self.write_paused = False
        self.paused_since = 0.0
        self.fail_after: bytes | None = None  # an error answer due once the queue is answered
        self.continue_pending = False
        self._drain: asyncio.Future[None] | None = None
        self._lost: list[asyncio.Future[None]] = []

    # --- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        server = self.server
        if server.write_limit != 65536:
            transport.set_write_buffer_limits(high=server.write_limit)  # type: ignore[attr-defined]
        if not server.admit(self):
            self.reading = False
            self.closed = True
            transport.write(server.refusal)  # type: ignore[attr-defined]
            transport.close()
            return
        server.connections[self] = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reading = False
        self.queue.clear()
        self.server.connections.pop(self, None)
        for waiter in (self._drain, self.parked, *self._lost):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self._lost.clear()

    def eof_received(self) -> bool:
        """The client shut its side: answer what it asked, then close."""
        self.eof = True
        return not self.closed and (self.task is not None or bool(self.queue))

    def pause_writing(self) -> None:
        self.write_paused = True
        self.paused_since = self.server.now

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self._drain
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        if not self.reading:
            return
        phase, begun = self.phase, self.begun
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            reason = exc.__context__
            if not isinstance(reason, _Reject):
                raise
            self.fail(reason.status, reason.message)
            return
        except httptools.HttpParserUpgrade:
            # the request was read (and is answered) as plain HTTP/1.1; what follows it
            # would be another protocol, so the connection closes after the answers
            self.reading = False
            self.phase = DONE
            if self.task is None and not self.queue:
                self._close()
            else:
                self.eof = True
            return
        except httptools.HttpParserError as exc:
            self.fail(400, f"malformed HTTP request: {exc}")
            return
        if phase == HEAD and self.phase == HEAD and begun == self.begun:
            # a head still incomplete after a whole read: what the parser holds for a header
            # not yet ended is bounded here (the callbacks see only complete headers)
            self.head_bytes += len(data)
            settings = self.settings
            if self.head_bytes > settings.max_url_bytes + settings.max_header_bytes:
                self.fail(431, f"request head over {self.head_bytes} bytes")

    # --- httptools callbacks
    def on_message_begin(self) -> None:
        self.phase = HEAD
        self.since = self.server.now
        self.begun += 1
        self.url = b""
        self.headers = []
        self.header_count = self.header_bytes = self.head_bytes = self.size = 0
        self.length = None
        self.expect = self.http10 = False
        self.body = []

    def on_url(self, url: bytes) -> None:
        url = self.url + url if self.url else url
        if len(url) > self.settings.max_url_bytes:
            raise _Reject(414, f"request target over {self.settings.max_url_bytes} bytes")
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        count = self.header_count = self.header_count + 1
        size = self.header_bytes = self.header_bytes + len(name) + len(value)
        if count > self.max_headers or size > self.max_header_bytes:
            raise _Reject(431, f"request headers over {self.max_headers} headers or "
                          f"{self.max_header_bytes} bytes")  # fmt: skip
        known = self.known.get(name)  # (a usual name as it is usually spelled: see header_table)
        if known is None:
            n = name.lower()
            kept = self.keep_all or n in self.names
            noted = NOTED.get(n, 0)
        else:
            n, kept, noted = known
        if kept:
            self.headers.append((n, value))
        if noted:
            if noted == LENGTH:
                self.length = value
            elif noted != EXPECT:  # Connection: maybe an HTTP/1.0 keep-alive (checked later)
                self.http10 = True
            elif value.lower() == b"100-continue":
                self.expect = True

    def on_headers_complete(self) -> None:
        if not self.reading:
            return
        self.phase = BODY
        server = self.server
        self.since = server.now
        # (hooks read, then called: ``server.hook(...)`` looks an attribute up as a method,
        # which Python 3.11 does not specialize: ~200 instructions more a call)
        make_head = server.make_head
        self.head = make_head(time.perf_counter(), self.headers)
        length = self.length
        if length is not None and length.isdigit() and int(length) > self.server.max_body:
            self._refuse(int(length))
        elif self.expect and self.parser.get_http_version() != "1.0":
            if self.task is None and not self.queue:
                self.transport.write(CONTINUE)
            else:  # an answer is still being written: the go-ahead follows it
                self.continue_pending = True

    def on_body(self, body: bytes) -> None:
        if self.refused is not None:
            return  # dropped: the answer is 413
        self.size += len(body)
        if self.size > self.server.max_body:
            self.body = []
            self._refuse(self.size)
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        if not self.reading:
            return
        self.phase = IDLE
        if self.refused is not None:  # its body is read; nothing after it is
            self.reading = False
            self.phase = DONE
            if self.refused.done:
                self._close()
            return
        body = self.body
        keep_alive = self.parser.should_keep_alive()
        # the version matters only to an HTTP/1.0 client: one that closes after the answer
        # (no keep-alive) or asked to keep the connection (a Connection header)
        if not keep_alive or self.http10:
            self.http10 = self.parser.get_http_version() == "1.0"
        exchange = self.server.exchange  # (read, then called: see on_headers_complete)
        x = exchange(
            self,
            self.head,
            body[0] if len(body) == 1 else b"".join(body),
            self.size,
            keep_alive,
        )
        self._dispatch(x)

    def _refuse(self, size: int) -> None:
        """Hand a request whose body is over the limit to the handler now (it answers 413);
        the rest of the body is dropped and the connection closes."""
        self.http10 = self.parser.get_http_version() == "1.0"
        x = self.server.exchange(self, self.head, b"", size, False)
        self.refused = x
        self._dispatch(x)

    # --- answering, in order
    def _dispatch(self, x: ServerExchange[H]) -> None:
        if self.task is not None or self.queue:
            queue = self.queue
            queue.append(x)
            self.queued_bytes += len(x.body_bytes)
            if not self.paused_reading and (
                len(queue) >= self.settings.max_pipelined
                or self.queued_bytes > self.server.max_body
            ):
                self.paused_reading = True
                self.transport.pause_reading()
            return
        server = self.server
        server.in_flight += 1
        handler = self.handler  # (read, then called: see on_headers_complete)
        try:
            pending = handler(x)
        except Exception:
            server.in_flight -= 1
            log.exception("%s %s: the request handler failed", x.method, x.path)
            x.flush()  # what it sent before it failed still goes out
            self._close()
            return
        if pending is None:  # answered at once
            server.in_flight -= 1
            if (
                server.access_log or not (x.done and x.keep_alive) or self.eof
            ) and not self._answered(x):
                return
            if self.fail_after is not None or self.continue_pending:
                self._idle()
            else:
                self.idle_since = self.server.now
            return
        parked = self.parked
        if parked is not None:  # the worker waits for this request: no new task
            self.parked = None
            self.task = self.worker
            parked.set_result((x, pending))
        else:
            self.task = self.worker = self.loop.create_task(self._run(x, pending))

    def _answered(self, x: ServerExchange[H]) -> bool:
        """After an answer: whether the connection goes on to the next request."""
        x.flush()  # a stream left unfinished: what it sent goes out before anything else
        if self.server.access_log:
            access.info("%s %s %d", x.method, x.path, x.status)
        if x.done and x.keep_alive and not (self.eof and not self.queue):
            return True
        self._finish(x)
        return False

    async def _run(self, x: ServerExchange[H], pending: Awaitable[None]) -> None:
        """The connection's worker: answers ``x`` (its handler's ``pending`` awaitable), then
        what is queued behind it; then, while the connection stays open, waits for the next
        request that must wait (one task for the connection's life, not one per request)."""
        server = self.server
        try:
            while True:
                try:
                    await pending
                finally:
                    server.in_flight -= 1
                if self._answered(x):
                    if self.write_paused:  # no further answer piles up behind an unread one
                        await self.drained()
                    queue = self.queue
                    if queue and not self.closed:
                        x = queue.popleft()
                        self.queued_bytes -= len(x.body_bytes)
                        if (
                            self.paused_reading
                            and len(queue) <= self.settings.max_pipelined // 2
                            and self.queued_bytes <= self.server.max_body // 2
                        ):
                            self.paused_reading = False
                            self.transport.resume_reading()
                        server.in_flight += 1
                        try:
                            got = self.handler(x)
                        except BaseException:
                            server.in_flight -= 1
                            raise
                        pending = got if got is not None else _DONE
                        continue
                # nothing left to answer
                self.task = None
                if self.closed:
                    pass
                elif self.fail_after is not None or self.eof or self.continue_pending:
                    self._idle()
                else:  # what _idle does when nothing waits for the answers to end
                    self.idle_since = server.now
                if server.closing:
                    server.request_done()
                worker = self.worker
                if self.closed or worker is None or worker.cancelling():
                    return  # (a cancellation still pending: the next request gets a new task)
                parked = self.parked = self.loop.create_future()
                nxt = await parked
                if nxt is None:  # the connection is gone
                    return
                x, pending = nxt
        except asyncio.CancelledError:
            if self.task is not None:  # (cancelled while parked: nothing to answer)
                x.flush()
            self._close()
            raise
        except Exception:
            log.exception("%s %s: the request handler failed", x.method, x.path)
            x.flush()  # what it sent before it failed still goes out
            self._close()
        finally:
            self.worker = self.parked = None
            if self.task is not None:  # ended while answering
                self.task = None
                if not self.closed:
                    self._idle()
                server.request_done()

    def _idle(self) -> None:
        """Nothing left to answer: what was waiting for that happens now."""
        self.idle_since = self.server.now
        if self.fail_after is not None:
            data, self.fail_after = self.fail_after, None
            self.transport.write(data)
            self._linger()
        elif self.eof:
            self._close()
        elif self.continue_pending:
            self.continue_pending = False
            self.transport.write(CONTINUE)

    def fail(self, status: int, message: str) -> None:
        """Stop reading and answer ``status`` once what came before is answered; close."""
        if self.closed:
            return
        self.reading = False
        self.phase = DONE
        data = error_answer(status, message)
        if self.task is None and not self.queue:
            self.transport.write(data)
            self._linger()
        else:
            self.fail_after = data

    def _finish(self, x: ServerExchange[H]) -> None:
        """After the last answer on a connection that closes."""
        if self.phase != IDLE or x is self.refused:  # the client may still be sending
            self._linger()
        else:
            self._close()

    def _close(self) -> None:
        self.reading = False
        self.queue.clear()
        if not self.closed:
            self.closed = True
            self.since = self.server.now
            self.transport.close()

    def abort(self, *, reset: bool = True) -> None:
        """Drop the connection, what is still unsent with it. With ``reset`` the kernel's
        buffer (megabytes, for a client that reads nothing) is discarded too and the client
        sees a reset; without, it sees the connection end."""
        self.reading = False
        self.queue.clear()
        self.closed = True
        self.since = self.server.now
        sock = self.transport.get_extra_info("socket") if reset else None
        if sock is not None:
            with contextlib.suppress(OSError):  # already gone: nothing left to discard
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        self.transport.abort()

    def _linger(self) -> None:
        """Close once the answer is out: shut our side, drop what the client still sends
        for a moment (it reads the answer rather than a reset), then close."""
        self.reading = False
        self.queue.clear()
        if self.closed:
            return
        self.closed = True
        self.since = self.server.now
        transport = self.transport
        if self.paused_reading:
            self.paused_reading = False
            transport.resume_reading()
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self._end_linger)

    def _end_linger(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    # --- the server's sweep
    def idle(self) -> bool:
        """No request in progress, none begun: may be closed to make room."""
        return not self.closed and self.phase == IDLE and self.task is None and not self.queue

    def check(self, now: float, late: float) -> None:
        """Enforce the timeouts (called by the server's sweep; ``late``: how stale the times
        read during the last tick may be)."""
        settings = self.settings
        if self.closed:  # an answer still leaving: bounded like any write
            if now - self.since > settings.write_timeout + LINGER_SECONDS + late:
                self.abort()
            return
        if self.write_paused and now - self.paused_since > settings.write_timeout + late:
            waited = now - self.paused_since
            log.info("dropping a connection whose client read nothing for %.1fs", waited)
            self.abort()
            return
        phase = self.phase
        if phase == HEAD:
            if now - self.since > settings.header_timeout + late:
                self.fail(408, f"request head not received within {settings.header_timeout}s")
        elif phase == BODY:
            if now - self.since > settings.body_timeout + late:
                self.fail(408, f"request body not received within {settings.body_timeout}s")
        elif (
            phase == IDLE
            and self.task is None
            and not self.queue
            and now - self.idle_since > settings.keep_alive_timeout + late
        ):
            if self.transport.get_write_buffer_size():
                self.abort()  # an answer the client never read
            else:
                self._close()

    # --- waiting on the connection
    async def drained(self) -> None:
        """Until the client's socket buffer has room again (or the connection is gone)."""
        if self.closed or not self.write_paused:
            return
        self._drain = self.loop.create_future()
        try:
            await self._drain
        finally:
            self._drain = None

    def lost(self) -> asyncio.Future[None]:
        """A new future, done when the connection is gone."""
        waiter: asyncio.Future[None] = self.loop.create_future()
        if self.closed:
            waiter.set_result(None)
        else:
            self._lost = [w for w in self._lost if not w.done()]
            self._lost.append(waiter)
        return waiter


class _Done:
    """An awaitable that is already done (a handler that answered at once)."""

    def __await__(self) -> Any:
        return
        yield


_DONE = _Done()
