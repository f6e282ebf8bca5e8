"""A server connection's state, its closing and its timeouts: the base of :class:`ServerConnection`.

:class:`ConnectionState` holds every per-connection field (the one ``__slots__`` layout of
:class:`~._connection.ServerConnection`, whose reading is in :mod:`._connection` and whose
answering is in :mod:`._connection_answers`) and what ends a connection. The head must arrive
within ``header_timeout`` of its first byte and the body within ``body_timeout`` of the head
(408); an idle connection closes after ``keep_alive_timeout``; an answer stuck longer than
``write_timeout`` drops the connection. The server's sweep (:meth:`ConnectionState.check`)
enforces the times against the clock it reads once a tick (a timeout fires at most two ticks
late, never early), so a request costs no timer and no clock reading. Closing after an error
first half-closes and drops what the client still sends for a moment, so it reads the answer
rather than a reset.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import struct
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httptools

from ._exchange import ServerExchange
from ._wire import error_answer

if TYPE_CHECKING:
    from ._server import HttpServer

H = TypeVar("H")

#: the connection's logger (one name for the three modules of :class:`ServerConnection`)
log = logging.getLogger("prsm.performance.http._connection")

#: how long a closing connection drops what the client still sends before it closes
LINGER_SECONDS = 1.0
IDLE, HEAD, BODY, DONE = 0, 1, 2, 3  # what is being read
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets the connection


class ConnectionState(asyncio.Protocol, Generic[H]):
    """One client connection's state (every field of :class:`ServerConnection`) and what
    closes it: errors, aborts, lingering, the sweep's timeouts, waiting for it to drain."""

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
