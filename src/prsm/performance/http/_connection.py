"""One client connection to the server core: an asyncio protocol with httptools' parser.

Reading: the URL, the header section (size and count) and the body are capped as they arrive
(414, 431, and the app's 413); a request too large is handed on at once (answered 413), the
rest of its body dropped. An ``Expect: 100-continue`` from an HTTP/1.0 client is ignored.

:class:`ServerConnection` is one protocol class in three modules, each a base of the next:
:mod:`._connection_state` (every field, closing, the sweep's timeouts), then
:mod:`._connection_answers` (answering in order), then this one (the protocol's and the
parser's callbacks).
"""

from __future__ import annotations

import asyncio
import time
from typing import TypeVar

import httptools

from ._connection_answers import ConnectionAnswers
from ._connection_state import BODY, DONE, HEAD, IDLE
from ._wire import CONTINUE, EXPECT, LENGTH, NOTED

H = TypeVar("H")


class _Reject(Exception):
    """Raised in a parser callback to stop reading: the request is answered ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ServerConnection(ConnectionAnswers[H]):
    """One client connection: parses requests, hands each to the handler in order."""

    __slots__ = ()  # (every field is :class:`~._connection_state.ConnectionState`'s)

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
