"""The one HTTP/1.1 client: :class:`~._client_connection.ClientConnection` (asyncio protocols,
answers parsed by httptools, the parser uvicorn uses), pooled per origin with keep-alive.

It does what an OpenAI-compatible upstream and a load generator need and no more: send a
whole request, read a ``Content-Length``, chunked or close-delimited answer whole (status,
headers, body), or read it chunk by chunk as it arrives (:mod:`._pool_stream`; chunks that
arrived together are passed on together, and reading pauses while 64 wait). TLS for
``https`` (the system's authorities, a CA bundle, or no checks), through an HTTP proxy
(``CONNECT`` for ``https``; ``HTTP(S)_PROXY``/``NO_PROXY``), a cap on connections per origin,
connect and read timeouts (:class:`~._settings.HttpClientSettings`).

**Idle connections do not pile up.** The pool reuses the connection released last (the warm
one), and closes those idle for ``idle_timeout``: on each release (the oldest first) and on a
timer while any is idle, so a burst's extra connections close once it is over rather than
staying open until the server drops them (some never do).

**Nothing is sent twice.** A pooled connection found closed (or half-closed by the server, or
idle longer than ``idle_timeout``) before the request is written is not used; once a request
is written, any failure is raised (:class:`~prsm.performance.errors.ConnectionFailed`,
``sent=True``) for the caller's
retry policy to decide and count: the server may have started on it. Measured against
aiohttp's pooled client on the upstream simulator it spends about a quarter of the CPU per
request (see the gateway section of the README).
"""

from __future__ import annotations

import asyncio
import collections
from urllib.parse import urlsplit

from ..clock import Clock
from ..errors import ConnectionFailed
from ._client_connection import ClientConnection, ClientResponse
from ._pool_stream import PoolStream
from ._proxy import Proxy, open_tunnel, proxy_for, tls_context
from ._settings import HttpClientSettings


class HttpPool:
    """Keep-alive connections to one origin (``scheme://host:port``)."""

    def __init__(
        self,
        origin: str,
        settings: HttpClientSettings | None = None,
        *,
        environ: dict[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"origin: must be http(s)://host[:port], got {origin!r}")
        self.settings = s = settings or HttpClientSettings()
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.netloc = parts.netloc
        self.proxy: Proxy | None = proxy_for(
            parts.scheme, self.host, explicit=s.proxy, trust_env=s.trust_env, environ=environ
        )
        #: idle connections, the one idle longest first (taken from the right: the warmest)
        self.idle: collections.deque[ClientConnection] = collections.deque()
        self.connections: set[ClientConnection] = set()
        self.opening = 0  # connections being opened (they count against the cap)
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._ssl = tls_context(s.verify, s.ca_bundle) if self.tls else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._now = clock.monotonic if clock is not None else None
        self._trimmer: asyncio.TimerHandle | None = None

    def _clock(self) -> float:
        if self._now is not None:
            return self._now()
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()

    def trim(self) -> int:
        """Close the connections idle for ``idle_timeout`` or more; how many closed."""
        idle = self.idle
        if not idle:
            return 0
        deadline = self._clock() - self.settings.idle_timeout
        closed = 0
        while idle and idle[0].idle_since <= deadline:
            idle.popleft().close()
            closed += 1
        return closed

    def _on_trim_timer(self) -> None:
        self._trimmer = None
        self.trim()
        if self.idle:
            self._arm_trimmer()

    def _arm_trimmer(self) -> None:
        if self._now is not None:
            return  # an injected clock: the owner calls trim()
        loop = self._loop or asyncio.get_running_loop()
        self._trimmer = loop.call_later(self.settings.idle_timeout / 2, self._on_trim_timer)

    def request_head(self, path: str, headers: dict[str, str] | None = None) -> tuple[bytes, bytes]:
        """The start of a ``POST`` request's head to ``path``, and its end (put
        ``Content-Length: N`` between): the absolute form through a plain-HTTP proxy."""
        target = path
        extra = dict(headers or {})
        if self.proxy is not None and not self.tls:
            target = f"http://{self.netloc}{path}"
            if self.proxy.authorization:
                extra["Proxy-Authorization"] = self.proxy.authorization.decode("latin-1")
        return request_head(target, self.netloc, extra)

    async def _connect(self) -> ClientConnection:
        loop = asyncio.get_running_loop()
        s = self.settings
        proxy = self.proxy
        self.opening += 1
        try:
            async with asyncio.timeout(s.connect_timeout):
                if proxy is None:
                    _, conn = await loop.create_connection(
                        lambda: ClientConnection(self),
                        self.host,
                        self.port,
                        ssl=self._ssl,
                        server_hostname=self.host if self.tls else None,
                    )
                elif self.tls:  # a CONNECT tunnel, then TLS with the origin through it
                    raw = await open_tunnel(proxy, self.host, self.port)
                    conn = ClientConnection(self)
                    assert self._ssl is not None
                    try:
                        tls = await loop.start_tls(raw, conn, self._ssl, server_hostname=self.host)
                    except BaseException:
                        raw.close()
                        raise
                    conn.connection_made(tls)  # type: ignore[arg-type]
                else:
                    _, conn = await loop.create_connection(
                        lambda: ClientConnection(self), proxy.host, proxy.port
                    )
        except TimeoutError:
            via = f" through proxy {proxy.host}:{proxy.port}" if proxy else ""
            raise ConnectionFailed(
                f"could not connect to {self.host}:{self.port}{via} within {s.connect_timeout}s",
                received=False,
                sent=False,
            ) from None
        except OSError as exc:  # refused, unreachable, TLS failed, proxy refused
            raise ConnectionFailed(
                f"could not connect to {self.host}:{self.port}: {exc}", received=False, sent=False
            ) from exc
        finally:
            self.opening -= 1
            if self.waiters:
                self._wake_one()  # a failed attempt frees its place under the cap
        self.connections.add(conn)
        return conn

    def _take_idle(self) -> ClientConnection | None:
        """A pooled connection still fit to carry a request, if any (the others close)."""
        idle = self.idle
        if not idle:
            return None
        now = self._clock()
        limit = self.settings.idle_timeout
        while idle:
            conn = idle.pop()
            if (
                conn.keep_alive
                and not conn.closed
                and not conn.eof
                and now - conn.idle_since < limit
            ):
                return conn
            conn.close()
        return None

    async def _acquire(self) -> ClientConnection:
        conn = self._take_idle()
        if conn is not None:
            return conn
        cap = self.settings.max_connections
        while cap and len(self.connections) + self.opening >= cap:
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)
            conn = self._take_idle()
            if conn is not None:
                return conn
        return await self._connect()

    def _wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _release(self, conn: ClientConnection) -> None:
        if (
            conn.complete
            and conn.keep_alive
            and not conn.closed
            and not conn.eof
            and len(self.idle) < self.settings.max_idle
        ):
            idle = self.idle
            now = conn.idle_since = self._clock()
            idle.append(conn)
            if now - idle[0].idle_since >= self.settings.idle_timeout:
                self.trim()
            elif self._trimmer is None:
                self._arm_trimmer()
        else:
            conn.close()
        if self.waiters:
            self._wake_one()

    def forget(self, conn: ClientConnection) -> None:
        """A connection closed (by either side): no longer counted, nor kept idle."""
        if conn in self.connections:
            self.connections.discard(conn)
            if self.idle and conn in self.idle:  # the server dropped it while idle
                self.idle.remove(conn)
            self._wake_one()

    async def request(self, data: bytes) -> ClientResponse:
        """Send a whole request (head and body bytes); the whole answer."""
        conn = self._take_idle() or await self._acquire()
        timeout = self.settings.read_timeout
        conn.send(data)
        try:
            while not conn.complete:
                if conn.error is not None:
                    raise conn.error
                # with no read timeout (the caller bounds the call) the future itself: no
                # coroutine of its own
                await (conn.waiting() if timeout is None else conn.wait(timeout))
        except BaseException:
            conn.close()  # failed, cancelled or timed out mid-answer: unusable
            raise
        self._release(conn)
        return conn.response()

    def stream(self, data: bytes, response: ClientResponse) -> PoolStream:
        """Send a request and yield the answer's body as it arrives (:class:`PoolStream`).
        ``response`` gets the status and headers before the first chunk; a non-200 answer
        yields its body once. (An upstream builds its :class:`PoolStream` itself, with its
        node's errors: :class:`~._pool_stream.StreamErrors`.)"""
        return PoolStream(self, data, response)

    async def aclose(self) -> None:
        if self._trimmer is not None:
            self._trimmer.cancel()
            self._trimmer = None
        for conn in list(self.connections):
            conn.close()
        self.idle.clear()
        self.connections.clear()
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_exception(
                    ConnectionFailed("the pool closed", received=False, sent=False)
                )
        self.waiters.clear()
        await asyncio.sleep(0)


def request_head(
    path: str, host: str, headers: dict[str, str] | None = None
) -> tuple[bytes, bytes]:
    """The start of a ``POST`` request's head, and its end; put ``Content-Length: N`` between."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1"), b"\r\n\r\n"


def content(head: tuple[bytes, bytes], body: bytes) -> bytes:
    """A whole request: head, length, body."""
    return b"%s%d%s%s" % (head[0], len(body), head[1], body)
