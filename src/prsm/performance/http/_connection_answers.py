"""Answering a server connection's requests, in order (the middle of :class:`ServerConnection`).

A request whose handler must wait is answered by the connection's worker task, made once and
kept between requests (one task a connection, not one a request: a task costs about a
microsecond to make and register); pipelined requests are answered in order (reading pauses
while too many wait); after an answer that the client has not read (its socket buffer full),
the next waits for it. A malformed request after good ones is answered 400 once they are
answered, then the connection closes. ``Expect: 100-continue`` gets its go-ahead when the
request is the next to be answered. A client that half-closes (sends its request, then shuts
its side) still gets its answers, then the connection closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from ._connection_state import ConnectionState, log
from ._exchange import ServerExchange
from ._wire import CONTINUE

H = TypeVar("H")

access = logging.getLogger("prsm.performance.http.access")


class ConnectionAnswers(ConnectionState[H]):
    """Hands each request to the handler and writes the answers in order."""

    __slots__ = ()  # (every field is :class:`ConnectionState`'s)

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


class _Done:
    """An awaitable that is already done (a handler that answered at once)."""

    def __await__(self) -> Any:
        return
        yield


_DONE = _Done()
