"""HTTP/1.1 bytes shared by the server core: status lines, heads, chunk framing, and the
answers the server itself gives (400, 408, 414, 431, 503) as OpenAI-style error bodies."""

from __future__ import annotations

from http import HTTPStatus

import orjson

Headers = list[tuple[bytes, bytes]]

REASONS = {int(s): s.phrase.encode("latin-1") for s in HTTPStatus}
CLOSE = b"connection: close\r\n"
KEEP_ALIVE = b"connection: keep-alive\r\n"
CHUNKED = (b"transfer-encoding", b"chunked")
CHUNKED_LINE = b"transfer-encoding: chunked\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"

#: what the server notes of a request header besides keeping it (``HeaderTable``'s last item)
LENGTH, CONNECTION, EXPECT = 1, 2, 3
NOTED = {b"content-length": LENGTH, b"connection": CONNECTION, b"expect": EXPECT}
#: header names most requests carry (with those the server keeps and notes)
COMMON_HEADERS = (b"host", b"user-agent", b"accept", b"accept-encoding", b"content-type",
                  b"authorization", b"cache-control", b"x-request-id")  # fmt: skip
#: a header name as sent -> (in lower case, whether it is kept, what is noted of it: 0 or
#: one of ``NOTED``'s)
HeaderTable = dict[bytes, tuple[bytes, bool, int]]


def header_table(kept: frozenset[bytes] | None) -> HeaderTable:
    """The common header names as clients spell them (lower case, ``Title-Case``, upper case),
    the ones ``kept`` (``None``: all) marked, so that a request's usual headers are looked up
    once as they come, with no lower-casing and no look-ups of their own; a name spelled
    otherwise is read the long way (the same outcome)."""
    table: HeaderTable = {}
    for name in {*COMMON_HEADERS, *NOTED, *(kept or ())}:
        entry = (name, kept is None or name in kept, NOTED.get(name, 0))
        for spelling in (name, name.title(), name.upper()):
            table[spelling] = entry
    return table


#: what the server answers on its own, by status: (error code, what the client sees)
OWN_ERRORS = {
    400: "bad_request",
    408: "request_timeout",
    414: "url_too_long",
    431: "headers_too_large",
    503: "too_many_connections",
}


def head(
    status: int, headers: Headers | bytes, *, close: bool, keep_alive_10: bool = False
) -> bytes:
    """A response head (status line, headers, blank line). ``headers`` are pairs, or lines
    already made (``b"name: value\\r\\n"`` each). ``close`` adds ``connection: close``;
    ``keep_alive_10`` adds ``connection: keep-alive`` (an HTTP/1.0 client keeps the connection
    only when told)."""
    if isinstance(headers, bytes):
        lines = headers
    else:
        lines = b"".join([b"%s: %s\r\n" % kv for kv in headers])
    if close:
        lines += CLOSE
    elif keep_alive_10:
        lines += KEEP_ALIVE
    return b"HTTP/1.1 %d %s\r\n%s\r\n" % (status, REASONS.get(status, b"Unknown"), lines)


def chunk(data: bytes) -> bytes:
    """``data`` framed as one HTTP/1.1 chunk (nothing for empty data: that would end it)."""
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


def error_answer(status: int, message: str) -> bytes:
    """A whole ``connection: close`` answer the server gives on its own."""
    body = orjson.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error" if status < 500 else "server_error",
                "param": None,
                "code": OWN_ERRORS.get(status, "http_error"),
            }
        }
    )
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    return head(status, headers, close=True) + body
