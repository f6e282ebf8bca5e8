"""The worker wire format: frames round-trip both ways; a broken stream is an error."""

from __future__ import annotations

import asyncio
import socket

import pytest

from prsm.performance.workers._protocol import (
    HEADER,
    FrameError,
    pack,
    read_message,
    recv_message,
    send_message,
)


def test_blocking_round_trip_and_end_of_stream() -> None:
    a, b = socket.socketpair()
    with a, b:
        send_message(a, {"op": "embed", "id": 7, "texts": ["x", "y"], "blob": b"\x00\x01"})
        assert recv_message(b) == {"op": "embed", "id": 7, "texts": ["x", "y"], "blob": b"\x00\x01"}
        a.close()
        assert recv_message(b) is None


def test_a_stream_cut_inside_a_frame_is_an_error() -> None:
    a, b = socket.socketpair()
    with a, b:
        frame = pack({"id": 1, "ok": True})
        a.sendall(frame[:-2])
        a.close()
        with pytest.raises(FrameError, match="ended"):
            recv_message(b)


def test_an_oversized_or_garbled_frame_is_refused() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(HEADER.pack(2**31))
        with pytest.raises(FrameError, match="exceeds"):
            recv_message(b)
    a, b = socket.socketpair()
    with a, b:
        a.sendall(HEADER.pack(1) + b"\xc1")  # 0xc1 is never valid MessagePack
        with pytest.raises(FrameError, match="undecodable"):
            recv_message(b)


async def test_async_reader_reads_what_the_blocking_side_sends() -> None:
    a, b = socket.socketpair()
    reader, writer = await asyncio.open_unix_connection(sock=a)
    try:
        send_message(b, {"op": "ready", "pid": 1})
        send_message(b, {"id": 2, "pong": True})
        assert await read_message(reader) == {"op": "ready", "pid": 1}
        assert await read_message(reader) == {"id": 2, "pong": True}
        b.close()
        with pytest.raises(asyncio.IncompleteReadError):
            await read_message(reader)
    finally:
        writer.close()
        await writer.wait_closed()
