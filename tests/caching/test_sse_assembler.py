"""The SSE assembler: the same answers as the original quadratic version on any chunking, and
linear work in the stream's length (counted in bytes searched, not timed)."""

from __future__ import annotations

import itertools
import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from prsm.performance.caching import _sse
from prsm.performance.caching._sse import SSEAssembler, render_sse


def _old_boundary(buf: bytes) -> tuple[int, int] | None:
    best: tuple[int, int] | None = None
    for sep in (b"\n\n", b"\r\n\r\n", b"\r\r"):
        i = buf.find(sep)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, len(sep))
    return best


def _old_events(chunks: list[bytes]) -> list[bytes]:
    """The events the original implementation cut (whole buffer rescanned on every chunk)."""
    buffer, events = b"", []
    for chunk in chunks:
        buffer += chunk
        while (cut := _old_boundary(buffer)) is not None:
            end, skip = cut
            events.append(buffer[:end])
            buffer = buffer[end + skip :]
    return events


class _Recording(SSEAssembler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[bytes] = []

    def _event(self, raw: bytes) -> None:
        self.events.append(raw)
        super()._event(raw)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


_PIECES = st.sampled_from(
    [b"data: ", b"data:", b"{}", b'{"choices": []}', b"\n", b"\r", b"\r\n", b"\n\n", b"x", b": c"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=40), st.lists(st.integers(0, 10_000), max_size=12))
def test_same_events_as_the_original_on_any_chunking(pieces: list[bytes], cuts: list[int]) -> None:
    data = b"".join(pieces)
    asm = _Recording()
    for chunk in _split(data, cuts):
        asm.feed(chunk)
    assert asm.events == _old_events(_split(data, cuts))
    assert asm.events == _old_events([data])


@settings(max_examples=100, deadline=None)
@given(
    st.text(max_size=200),
    st.integers(1, 16),
    st.lists(st.integers(0, 100_000), max_size=20),
    st.sampled_from([b"\n\n", b"\r\n\r\n", b"\r\r"]),
)
def test_same_answer_as_the_original(
    content: str, chunk_chars: int, cuts: list[int], sep: bytes
) -> None:
    chat: dict[str, Any] = {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }
    data = b"".join(render_sse(chat, chunk_chars=chunk_chars)).replace(b"\n\n", sep)
    asm, ref = SSEAssembler(), SSEAssembler()
    for chunk in _split(data, cuts):
        asm.feed(chunk)
    for event in _old_events([data]):
        ref._event(event)
    ref._done = asm.done
    assert asm.result() == ref.result()
    assert asm.result() is not None


class _CountingSeparator:
    """Wraps the separator regex and counts the bytes each search examines."""

    def __init__(self) -> None:
        self.examined = 0
        self._re = re.compile(_sse._SEPARATOR.pattern)

    def search(self, buf: bytearray, pos: int) -> re.Match[bytes] | None:
        match = self._re.search(buf, pos)
        self.examined += (match.end() if match else len(buf)) - pos
        return match


def _megabyte_stream() -> bytes:
    big = orjson.dumps({"choices": [{"index": 0, "delta": {"content": "y" * 300_000}}]})
    small = orjson.dumps({"choices": [{"index": 0, "delta": {"content": "tok"}}]})
    parts = [b"data: " + big + b"\n\n"]
    while sum(map(len, parts)) < 1_000_000:
        parts.append(b"data: " + small + b"\n\n")
    return b"".join(parts) + b"data: [DONE]\n\n"


@pytest.mark.parametrize("size", [1, 7, 64, 1024, 4096])
def test_a_megabyte_is_searched_in_linear_work(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = _CountingSeparator()
    monkeypatch.setattr(_sse, "_SEPARATOR", counter)
    data = _megabyte_stream()
    asm = SSEAssembler()
    for i in range(0, len(data), size):
        asm.feed(data[i : i + size])
    assert asm.done
    # Each byte is examined at most a few times (the last three bytes again with the next
    # chunk); the original rescanned the 300 kB event on every chunk (~10^11 bytes at size 1).
    assert counter.examined <= 4 * len(data)
