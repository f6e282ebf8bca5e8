"""One request/response exchange: the interface the app's request logic is written against.

The request's path, method and :class:`~._asgi.RequestHead`; read the body; answer whole;
or start a stream, write chunks, end it; wait for the client to go away. ``prsm-perf
serve`` runs the app on the project's HTTP/1.1 server core (:mod:`prsm.performance.http`),
whose exchanges are :class:`NativeExchange`; any ASGI server can run it as plain ASGI
(:class:`AsgiExchange`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from ..errors import PayloadTooLargeError
from ..http._exchange import ServerExchange
from ._asgi import Receive, RequestHead, Scope, Send, disconnected

Headers = list[tuple[bytes, bytes]]


class NativeExchange(ServerExchange[RequestHead]):
    """An exchange on the server core (its head is the gateway's :class:`RequestHead`, built
    from the headers in :data:`~._asgi.HEAD_NAMES` as they are parsed)."""

    __slots__ = ()

    def open_stream(self, status: int, headers: Headers | bytes) -> None:
        """Start a streamed answer (after which an error can no longer be answered whole;
        ``headers`` as pairs, or as header lines already made); never waits."""
        self.begin(status, headers)
        self.head.started = True

    async def start(self, status: int, headers: Headers | bytes) -> None:
        """:meth:`open_stream`, as the gateway's exchange interface asks for it."""
        self.open_stream(status, headers)


class AsgiExchange:
    """An exchange over ASGI ``scope``, ``receive`` and ``send``."""

    __slots__ = ("client", "head", "method", "path", "query", "receive", "send")

    def __init__(self, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
        peer = scope.get("client")
        self.client: str | None = str(peer[0]) if peer else None  # the caller's address
        self.path: str = scope["path"]
        self.query: bytes = scope.get("query_string", b"")
        self.method: str = scope["method"]
        self.head = RequestHead.from_list(t0, scope["headers"])
        self.receive = receive
        self.send = send

    async def body(self, limit: int) -> bytes:
        """The whole request body; :class:`PayloadTooLargeError` past ``limit`` bytes,
        :class:`ConnectionResetError` if the client goes away while sending it."""
        raw = self.head.content_length
        length = int(raw) if raw is not None and raw.isdigit() else None
        if length is not None and length > limit:
            raise PayloadTooLargeError(length, limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ConnectionResetError("client went away while sending its body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(size, limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def reply(self, status: int, headers: Headers | bytes, body: bytes) -> None:
        """Answer whole (``headers`` include the content type and length; as pairs, or as
        header lines already made)."""
        send = self.send
        await send({"type": "http.response.start", "status": status, "headers": _pairs(headers)})
        await send({"type": "http.response.body", "body": body})

    async def start(self, status: int, headers: Headers | bytes) -> None:
        """Start a streamed answer (``headers`` as pairs, or as header lines already made)."""
        await self.send(
            {"type": "http.response.start", "status": status, "headers": _pairs(headers)}
        )
        self.head.started = True

    async def write(self, chunk: bytes) -> None:
        await self.send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def end(self) -> None:
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def disconnected(self) -> None:
        """Return once the client has gone away."""
        await disconnected(self.receive)


def _pairs(headers: Headers | bytes) -> Headers:
    """Header pairs, from pairs or from header lines already made."""
    if not isinstance(headers, bytes):
        return headers
    pairs = []
    for line in headers.split(b"\r\n"):
        if line:
            name, _, value = line.partition(b":")
            pairs.append((name, value.strip()))
    return pairs


class Exchange(Protocol):
    """What the app's request logic uses: :class:`AsgiExchange`, or the server core's
    :class:`NativeExchange`."""

    @property
    def path(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def head(self) -> RequestHead: ...
    async def body(self, limit: int) -> bytes: ...
    async def reply(self, status: int, headers: Headers | bytes, body: bytes) -> None: ...
    async def start(self, status: int, headers: Headers | bytes) -> None: ...
    async def write(self, chunk: bytes) -> None: ...
    async def end(self) -> None: ...
    def disconnected(self) -> Awaitable[None]: ...
