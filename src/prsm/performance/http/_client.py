"""The one HTTP/1.1 client: connections on asyncio protocols, answers parsed by httptools (the
parser uvicorn uses), pooled per origin with keep-alive.

It does what an OpenAI-compatible upstream and a load generator need and no more: send a
whole request, read a ``Content-Length``, chunked or close-delimited answer whole (status,
headers, body), or read it chunk by chunk as it arrives (server-sent events; chunks that
arrived together are passed on together, and reading pauses while 64 wait). TLS for
``https`` (the system's authorities, a CA bundle, or no checks), through an HTTP proxy
(``CONNECT`` for ``https``; ``HTTP(S)_PROXY``/``NO_PROXY``), a cap on connections per origin,
connect and read timeouts (:class:`~._settings.HttpClientSettings`).

**Nothing is sent twice.** A pooled connection found closed (or half-closed by the server, or
idle longer than ``idle_timeout``) before the request is written is not used; once a request
is written, any failure is raised (:class:`ConnectionFailed`, ``sent=True``) for the caller's
retry policy to decide and count: the server may have started on it. Measured against
aiohttp's pooled client on the upstream simulator it spends about a quarter of the CPU per
request (see the gateway section of the README).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncGenerator, Callable
from typing import Any
from urllib.parse import urlsplit

import httptools

from ..errors import ConnectionFailed
from ._proxy import Proxy, open_tunnel, proxy_for, tls_context
from ._settings import HttpClientSettings

_MAX_QUEUED_CHUNKS = 64
_MAX_HEADERS = 100
_MAX_HEADER_BYTES = 65536


class ClientResponse:
    """An answer's status, headers (lower-case names, in order) and body."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, status: int = 0, headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b""
    ) -> None:
        self.status = status
        self.headers = headers if headers is not None else []
        self.body = body

    def header(self, name: bytes) -> bytes | None:
        """The last value of header ``name`` (lower case), or ``None``."""
        for n, v in reversed(self.headers):
            if n == name:
                return v
        return None


class ClientConnection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time. ``on_done`` (if given) is
    called with the connection when an answer is complete or the connection fails."""

    __slots__ = ("body", "chunks", "closed", "complete", "eof", "error", "framed",
                 "header_bytes", "headers", "headers_done", "idle_since", "keep_alive",
                 "on_done", "parser", "paused", "pool", "received", "sent", "status",
                 "streaming", "tag", "transport", "waiter")  # fmt: skip

    def __init__(
        self,
        pool: HttpPool | None = None,
        on_done: Callable[[ClientConnection], None] | None = None,
    ) -> None:
        self.pool = pool
        self.on_done = on_done
        self.tag: Any = None  # whatever the owner keeps with the connection
        self.parser = httptools.HttpResponseParser(self)
        self.transport: Any = None
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
        self.body: list[bytes] = []
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
        except httptools.HttpParserError as exc:
            self._fail(f"malformed HTTP answer: {exc}")

    def _fail(self, message: str) -> None:
        self.error = ConnectionFailed(message, received=True)
        self.close()
        self._wake()

    # --- parser callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        self.headers.append((lower, value))
        self.header_bytes += len(name) + len(value)
        if lower in (b"content-length", b"transfer-encoding"):
            self.framed = True
        if len(self.headers) > _MAX_HEADERS or self.header_bytes > _MAX_HEADER_BYTES:
            raise ValueError("the answer's header section is too large")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True
        if self.streaming:
            self._wake()

    def on_body(self, body: bytes) -> None:
        if self.streaming and self.status == 200:
            self.chunks.append(body)
            if len(self.chunks) > _MAX_QUEUED_CHUNKS and not self.paused and self.transport:
                self.transport.pause_reading()
                self.paused = True
            self._wake()
        else:
            self.body.append(body)

    def on_message_complete(self) -> None:
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
        return not self.closed and not self.eof and self.keep_alive

    def send(self, data: bytes, *, streaming: bool = False) -> None:
        """Write a whole request (head and body)."""
        self.status = 0
        self.received = False
        self.complete = False
        self.headers_done = False
        self.framed = False
        self.headers = []
        self.header_bytes = 0
        self.body = []
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

    async def wait(self, within: float | None = None) -> None:
        """Until something happens (headers, a chunk, the end, a failure); ``TimeoutError``
        after ``within`` seconds of nothing."""
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            if within is None:
                await self.waiter
            else:
                try:
                    async with asyncio.timeout(within):
                        await self.waiter
                except TimeoutError:
                    raise TimeoutError(f"no byte from the server within {within}s") from None
        finally:
            self.waiter = None

    def resume(self) -> None:
        if self.paused and len(self.chunks) < _MAX_QUEUED_CHUNKS // 4:
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


class HttpPool:
    """Keep-alive connections to one origin (``scheme://host:port``)."""

    def __init__(
        self,
        origin: str,
        settings: HttpClientSettings | None = None,
        *,
        environ: dict[str, str] | None = None,
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
        self.idle: list[ClientConnection] = []
        self.connections: set[ClientConnection] = set()
        self.opening = 0  # connections being opened (they count against the cap)
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._ssl = tls_context(s.verify, s.ca_bundle) if self.tls else None

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
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if conn.reusable and now - conn.idle_since < self.settings.idle_timeout:
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
        if not conn.complete or not conn.reusable or len(self.idle) >= self.settings.max_idle:
            conn.close()
        else:
            conn.idle_since = asyncio.get_running_loop().time()
            self.idle.append(conn)
        self._wake_one()

    def forget(self, conn: ClientConnection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
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
                await conn.wait(timeout)
        except BaseException:
            conn.close()  # failed, cancelled or timed out mid-answer: unusable
            raise
        self._release(conn)
        return conn.response()

    async def stream(self, data: bytes, response: ClientResponse) -> AsyncGenerator[bytes, None]:
        """Send a request and yield the answer's body as it arrives. ``response`` gets the
        status and headers before the first chunk; a non-200 answer yields its body once."""
        conn = self._take_idle() or await self._acquire()
        timeout = self.settings.read_timeout
        conn.send(data, streaming=True)
        try:
            while not conn.headers_done:
                if conn.error is not None:
                    raise conn.error
                await conn.wait(timeout)
            response.status, response.headers = conn.status, conn.headers
            if conn.status != 200:
                while not conn.complete:
                    if conn.error is not None:
                        raise conn.error
                    await conn.wait(timeout)
                response.body = b"".join(conn.body)
                self._release(conn)
                yield response.body
                return
            chunks = conn.chunks
            while True:
                if chunks:
                    # what arrived together goes on together: the same bytes, fewer writes
                    if len(chunks) == 1:
                        chunk = chunks.popleft()
                    else:
                        chunk = b"".join(chunks)
                        chunks.clear()
                    conn.resume()
                    yield chunk
                    continue
                if conn.complete:
                    break
                if conn.error is not None:
                    raise conn.error
                await conn.wait(timeout)
            self._release(conn)
        finally:
            if not conn.complete:
                conn.close()

    async def aclose(self) -> None:
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
