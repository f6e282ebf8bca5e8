"""The HTTP/1.1 server core: listen, accept, cap the connections, enforce the timeouts,
shut down gracefully. The gateway (``prsm-perf serve``) and the upstream simulator both run
on it; each request goes to a handler as a :class:`~._exchange.ServerExchange`.

A handler returns ``None`` once it has answered (no task is made for it), or an awaitable
that answers: the connection's one task (made at its first such request, kept while it stays
open) awaits it, then the next; requests on one connection thus share that task's context
variables. ``make_head`` turns a request's headers (lower-case names; only
``header_names``, when given) into whatever the handler reads from them, once per request.

Beyond ``max_connections`` a new connection replaces the one idle longest (no request in
progress, none begun) or, when every connection is busy, is answered 503 and closed, so the
connections already open are still served. The process's open-file limit is raised (to its
hard limit at most) so that the cap can be reached; where it cannot, the cap is lowered to
fit and a warning says so. One sweep, every quarter of the shortest timeout (at most once a
second), enforces every connection's timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import ssl as _ssl
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Generic, TypeVar

from ._connection import ServerConnection
from ._exchange import ServerExchange
from ._settings import HttpServerSettings
from ._wire import error_answer, header_table

H = TypeVar("H")
log = logging.getLogger(__name__)

#: a request handler: ``None`` once it has answered, or an awaitable that answers
Handler = Callable[[ServerExchange[H]], Awaitable[None] | None]
#: file descriptors kept for everything but client connections (upstreams, files, Redis)
FD_RESERVE = 256


def raise_open_files(wanted: int) -> int:
    """Raise this process's soft limit on open files towards ``wanted`` (its hard limit at
    most); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
    return int(soft) if soft != resource.RLIM_INFINITY else wanted


def _head_list(t0: float, headers: list[tuple[bytes, bytes]]) -> Any:
    return headers


class HttpServer(Generic[H]):
    """Listens, accepts :class:`~._connection.ServerConnection` connections, enforces the
    limits of its :class:`HttpServerSettings`, and shuts down gracefully."""

    def __init__(
        self,
        handler: Handler[H],
        settings: HttpServerSettings | None = None,
        *,
        max_body: int = 1_048_576,
        make_head: Callable[[float, list[tuple[bytes, bytes]]], H] = _head_list,
        header_names: Collection[bytes] | None = None,
        exchange: type[ServerExchange[H]] = ServerExchange,
        access_log: bool = False,
    ) -> None:
        self.handler = handler
        self.settings = settings or HttpServerSettings()
        self.max_body = max_body
        self.make_head = make_head
        # kept header names are compared in lower case (as requests' names are read)
        self.header_names = (
            frozenset(n.lower() for n in header_names) if header_names is not None else None
        )
        self.header_table = header_table(self.header_names)
        self.exchange = exchange
        self.access_log = access_log
        self.write_limit = self.settings.write_buffer_bytes
        self.max_connections = self.settings.max_connections
        self.refusal = error_answer(503, "too many connections; try again shortly")
        self.connections: dict[ServerConnection[H], None] = {}  # oldest first
        self.closing = False
        self.in_flight = 0
        self.evicted = 0  # idle connections closed to make room
        self.refused = 0  # connections answered 503 at the cap
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # at start
        #: the loop's clock as read by the last sweep (connections stamp times with it)
        self.now = 0.0
        self._server: asyncio.AbstractServer | None = None
        self._idle: asyncio.Future[None] | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self.tick = max(0.05, min(1.0, self.settings.shortest_timeout / 4))

    async def start(
        self,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
        backlog: int = 4096,
        ssl: _ssl.SSLContext | None = None,
    ) -> int:
        """Listen on ``host``:``port``; returns the port (useful with port 0)."""
        self.loop = loop = asyncio.get_running_loop()
        self.now = loop.time()
        soft = raise_open_files(self.settings.max_connections + FD_RESERVE)
        if soft - FD_RESERVE < self.max_connections:
            self.max_connections = max(1, soft - FD_RESERVE)
            log.warning(
                "max_connections lowered from %d to %d: the open-file limit is %d",
                self.settings.max_connections, self.max_connections, soft,
            )  # fmt: skip
        self._server = await loop.create_server(
            lambda: ServerConnection(self),
            host,
            port,
            backlog=backlog,
            reuse_port=reuse_port or None,
            ssl=ssl,
        )
        self._sweeper = loop.call_later(self.tick, self._sweep)
        sock: socket.socket = self._server.sockets[0]
        return int(sock.getsockname()[1])

    # --- the connection cap
    def admit(self, conn: ServerConnection[H]) -> bool:
        """Make room for ``conn``: ``False`` when every open connection is busy."""
        if len(self.connections) < self.max_connections:
            return True
        for other in self.connections:  # oldest first: idle attackers come first
            if other.idle():
                del self.connections[other]
                other._close()
                self.evicted += 1
                return True
        self.refused += 1
        return False

    def _sweep(self) -> None:
        now = self.loop.time()
        late, self.now = now - self.now, now  # how stale a time stamped since then may be
        for conn in list(self.connections):
            conn.check(now, late)
        self._sweeper = self.loop.call_later(self.tick, self._sweep)

    # --- shutting down
    def request_done(self) -> None:
        if self.closing:
            self._close_idle()
            waiter = self._idle
            if waiter is not None and not waiter.done() and not self._busy():
                waiter.set_result(None)

    def _busy(self) -> list[ServerConnection[H]]:
        return [c for c in self.connections if c.task is not None]

    def _close_idle(self) -> None:
        for conn in list(self.connections):
            if conn.task is None and conn.refused is None and not conn.closed:
                conn._close()

    async def shutdown(self, grace: float) -> None:
        """Stop accepting, close idle connections, let requests and streams in flight finish
        within ``grace`` seconds, then close every connection that is left."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._close_idle()
        if self._busy():
            self._idle = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._idle), grace)
            except TimeoutError:
                left = self._busy()
                log.warning("shutdown: %d request(s) still in flight after %ss", len(left), grace)
                for conn in left:
                    if conn.task is not None:
                        conn.task.cancel()
        for conn in list(self.connections):
            conn._close()
        await asyncio.sleep(0)
