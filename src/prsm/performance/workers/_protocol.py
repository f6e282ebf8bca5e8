"""The wire between the pool and a worker: length-prefixed MessagePack frames on a socket pair.

Each frame is a 4-byte big-endian length then a MessagePack map (msgspec). Vectors travel
as raw little-endian float32 bytes (no per-float encoding), so a batch of 128 × 384
embeddings is one 196 KB ``bytes`` value. The pool side is asyncio streams; the worker side
is a plain blocking socket (the worker does one thing at a time).

Messages, pool → worker: ``{"op": "embed", "id", "texts"}``, ``{"op": "ping", "id"}``,
``{"op": "stop"}``. Worker → pool: ``{"op": "ready", "pid", "device", "dim", "note"}``
once the model is loaded; ``{"id", "ok": true, "vectors", "dim", "tokens", "errors",
"seconds"}`` for an embed (``errors`` maps an item's index to why it failed);
``{"id", "ok": false, "error"}`` when the whole batch failed; ``{"id", "pong": true}``.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import msgspec

HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(dict[str, Any])


class FrameError(ConnectionError):
    """The peer sent something that is not a frame of this protocol."""


def pack(message: dict[str, Any]) -> bytes:
    """One frame: header and body."""
    body = _encoder.encode(message)
    return HEADER.pack(len(body)) + body


def unpack(body: bytes) -> dict[str, Any]:
    """A frame's body back into a message."""
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise FrameError(f"undecodable frame: {exc}") from exc


def _length(header: bytes) -> int:
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise FrameError(f"frame of {length} bytes exceeds the limit of {MAX_FRAME}")
    return int(length)


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any]:
    """The next message; :class:`asyncio.IncompleteReadError` at end of stream."""
    length = _length(await reader.readexactly(HEADER.size))
    return unpack(await reader.readexactly(length))


def recv_message(sock: socket.socket) -> dict[str, Any] | None:
    """Blocking read of the next message; ``None`` when the peer closed the socket."""
    header = _recv_exactly(sock, HEADER.size)
    if header is None:
        return None
    body = _recv_exactly(sock, _length(header))
    if body is None:
        raise FrameError("stream ended inside a frame")
    return unpack(body)


def send_message(sock: socket.socket, message: dict[str, Any]) -> None:
    """Blocking write of one message."""
    sock.sendall(pack(message))


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            if got == 0:
                return None
            raise FrameError(f"stream ended after {got} of {n} bytes")
        got += k
    return bytes(buf)
