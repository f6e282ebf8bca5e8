"""The ASGI plumbing the gateway app uses: types, what it reads from request headers, the
``Cache-Control`` mapping, and waiting for a client to go away."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..types import RequestKind, new_request_id

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

RID = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")
JSON = (b"content-type", b"application/json")
SSE = (b"content-type", b"text/event-stream")
TEXT = (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
KINDS = {
    "/v1/chat/completions": RequestKind.CHAT,
    "/v1/completions": RequestKind.COMPLETION,
    "/v1/embeddings": RequestKind.EMBEDDING,
}


def cache_mode(value: bytes | None) -> str:
    """The request's cache mode from its ``Cache-Control`` header."""
    if not value:
        return "default"
    v = value.lower()
    if b"no-store" in v:
        return "no-store"
    if b"no-cache" in v:
        return "no-cache"
    return "default"


class RequestHead:
    """What the gateway reads from a request's headers, in one pass."""

    __slots__ = ("api_key", "auth", "cache_control", "length", "rid", "started", "t0")

    def __init__(self, t0: float, headers: list[tuple[bytes, bytes]]) -> None:
        self.t0 = t0
        self.started = False
        self.auth: bytes | None = None
        self.api_key: bytes | None = None
        self.cache_control: bytes | None = None
        self.length: int | None = None
        rid = None
        for name, value in headers:
            if name == b"authorization":
                self.auth = value
            elif name == b"content-length":
                self.length = int(value) if value.isdigit() else None
            elif name == b"x-request-id":
                rid = value if RID.fullmatch(value) else None
            elif name == b"cache-control":
                self.cache_control = value
            elif name == b"x-api-key":
                self.api_key = value
        self.rid: bytes = rid or new_request_id().encode()


async def disconnected(receive: Receive) -> None:
    """Return once the client has gone away."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
