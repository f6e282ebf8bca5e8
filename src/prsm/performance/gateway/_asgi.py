"""The ASGI plumbing the gateway app uses: types, what it reads from request headers, the
``Cache-Control`` mapping, and waiting for a client to go away."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from ..types import RequestKind, new_request_id

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

RID = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")
JSON = (b"content-type", b"application/json")
SSE = (b"content-type", b"text/event-stream")
TEXT = (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
#: the request headers :class:`RequestHead` reads (the server core keeps only these)
HEAD_NAMES = frozenset(
    {b"authorization", b"x-api-key", b"cache-control", b"content-length", b"x-request-id",
     b"host", b"origin"}  # host, origin: the admin API's local-caller check
)  # fmt: skip
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
    # ``find``, not ``in``: ``in`` first tries the needle as an integer (a byte's value), and
    # the TypeError it makes and drops costs about 2,000 instructions, more than the search
    if v.find(b"no-store") >= 0:
        return "no-store"
    if v.find(b"no-cache") >= 0:
        return "no-cache"
    return "default"


class RequestHead(msgspec.Struct, eq=False):
    """What the gateway reads from a request's headers, made by :meth:`from_list` (one pass
    over a list of lower-case names and values). A struct (made in C: one a request, at half
    the cost of a class with an ``__init__``); compared by identity, as an object."""

    t0: float
    auth: bytes | None
    api_key: bytes | None
    cache_control: bytes | None
    #: as sent: read only by an ASGI server's exchange (ours checks it as it reads the head)
    content_length: bytes | None
    #: the client's ``X-Request-Id`` when it is a usable one, else one made here
    rid: bytes
    host: bytes | None = None  # Host and Origin: the admin API's local-caller check
    origin: bytes | None = None
    started: bool = False

    @classmethod
    def from_list(cls, t0: float, headers: list[tuple[bytes, bytes]]) -> RequestHead:
        """From ASGI's header list (lower-case names; the last of repeated names wins)."""
        auth = api_key = cache_control = length = rid = host = origin = None
        for name, value in headers:
            if name == b"authorization":
                auth = value
            elif name == b"content-length":
                length = value
            elif name == b"x-request-id":
                rid = value
            elif name == b"cache-control":
                cache_control = value
            elif name == b"x-api-key":
                api_key = value
            elif name == b"host":
                host = value
            elif name == b"origin":
                origin = value
        if rid is None or not RID.fullmatch(rid):
            rid = new_request_id().encode()
        return cls(t0, auth, api_key, cache_control, length, rid, host, origin)


async def disconnected(receive: Receive) -> None:
    """Return once the client has gone away."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
