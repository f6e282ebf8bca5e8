"""Streams and the exact cache: assemble a streamed answer for storing, replay a stored one.

A streamed OpenAI answer (server-sent events of ``chat.completion.chunk`` or streamed
``text_completion`` objects) is cached as the complete answer it adds up to
(:class:`SSEAssembler`); a later request, streaming or not, is answered from that entry, and
:func:`render_sse` turns it back into OpenAI-shaped events ending with ``data: [DONE]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"

# An event ends at the first blank line, whichever line ending the stream uses. The regex finds
# the leftmost separator in one pass (at one position at most one alternative can match).
_SEPARATOR = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LONGEST_SEPARATOR = 4


def _event(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _pieces(text: str, size: int | None) -> list[str]:
    if not text:
        return []
    if size is None or size >= len(text):
        return [text]
    return [text[i : i + size] for i in range(0, len(text), size)]


def render_sse(completion: dict[str, Any], *, chunk_chars: int | None = None) -> Iterator[bytes]:
    """Server-sent events replaying ``completion`` (a ``chat.completion`` or
    ``text_completion`` object): per choice a role chunk, content chunks of up to
    ``chunk_chars`` characters (one chunk when ``None``), tool calls, the finish reason; then
    the usage (when known) and ``data: [DONE]``."""
    is_chat = completion.get("object") == "chat.completion"
    base: dict[str, Any] = {
        "id": completion.get("id", "cached"),
        "object": "chat.completion.chunk" if is_chat else "text_completion",
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    if "system_fingerprint" in completion:
        base["system_fingerprint"] = completion["system_fingerprint"]
    for choice in completion.get("choices", ()):
        index = choice.get("index", 0)
        if is_chat:
            message = choice.get("message") or {}
            role = {"role": message.get("role", "assistant"), "content": ""}
            yield _event(
                base | {"choices": [{"index": index, "delta": role, "finish_reason": None}]}
            )
            for piece in _pieces(message.get("content") or "", chunk_chars):
                delta = {"content": piece}
                yield _event(
                    base | {"choices": [{"index": index, "delta": delta, "finish_reason": None}]}
                )
            calls = message.get("tool_calls")
            if calls:
                delta_calls = [{"index": i, **call} for i, call in enumerate(calls)]
                tools: dict[str, Any] = {"tool_calls": delta_calls}
                yield _event(
                    base | {"choices": [{"index": index, "delta": tools, "finish_reason": None}]}
                )
            end: dict[str, Any] = {
                "index": index,
                "delta": {},
                "finish_reason": choice.get("finish_reason"),
            }
        else:
            for piece in _pieces(choice.get("text") or "", chunk_chars):
                yield _event(
                    base
                    | {
                        "choices": [
                            {"index": index, "text": piece, "finish_reason": None, "logprobs": None}
                        ]
                    }
                )
            end = {
                "index": index,
                "text": "",
                "finish_reason": choice.get("finish_reason"),
                "logprobs": None,
            }
        yield _event(base | {"choices": [end]})
    if completion.get("usage"):
        yield _event(base | {"choices": [], "usage": completion["usage"]})
    yield DONE


class SSEAssembler:
    """Collects a streamed answer's events (fed as the raw bytes arrive, split anywhere) and
    builds the complete ``chat.completion`` / ``text_completion`` object they add up to."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._start = 0  # where the unconsumed bytes of the buffer begin
        self._scan = 0  # no separator starts before this offset
        self._done = False
        self._meta: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: Any = None
        self._chat = True
        self.valid = True

    @property
    def done(self) -> bool:
        """Whether ``data: [DONE]`` arrived."""
        return self._done

    def feed(self, chunk: bytes) -> None:
        """Add the next bytes of the stream.

        Linear in the stream's length however it is split: only the bytes that could hold a
        separator not seen yet (the new ones and the last few before them) are searched, and
        consumed events are dropped once per call."""
        buf = self._buffer
        buf += chunk
        while True:
            match = _SEPARATOR.search(buf, self._scan)
            if match is None:
                self._scan = max(self._start, len(buf) - (_LONGEST_SEPARATOR - 1))
                break
            event = bytes(buf[self._start : match.start()])
            self._start = self._scan = match.end()
            self._event(event)
        if self._start:
            del buf[: self._start]
            self._scan -= self._start
            self._start = 0

    def _event(self, raw: bytes) -> None:
        data = b"".join(line[5:].lstrip() for line in raw.splitlines() if line.startswith(b"data:"))
        if not data:
            return
        if data == b"[DONE]":
            self._done = True
            return
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.valid = False
            return
        if not isinstance(obj, dict) or "error" in obj:
            self.valid = False
            return
        self._chat = obj.get("object", "chat.completion.chunk") == "chat.completion.chunk"
        for name in ("id", "created", "model", "system_fingerprint"):
            if name in obj and name not in self._meta:
                self._meta[name] = obj[name]
        if obj.get("usage"):
            self._usage = obj["usage"]
        for choice in obj.get("choices") or ():
            self._choice(choice)

    def _choice(self, choice: dict[str, Any]) -> None:
        index = int(choice.get("index", 0))
        acc = self._choices.setdefault(
            index, {"role": "assistant", "content": [], "tools": {}, "finish_reason": None}
        )
        if choice.get("finish_reason") is not None:
            acc["finish_reason"] = choice["finish_reason"]
        if not self._chat:
            acc["content"].append(choice.get("text") or "")
            return
        delta = choice.get("delta") or {}
        if delta.get("role"):
            acc["role"] = delta["role"]
        if delta.get("content"):
            acc["content"].append(delta["content"])
        for call in delta.get("tool_calls") or ():
            slot = acc["tools"].setdefault(
                int(call.get("index", 0)), {"id": None, "type": "function", "name": "", "args": []}
            )
            if call.get("id"):
                slot["id"] = call["id"]
            if call.get("type"):
                slot["type"] = call["type"]
            fn = call.get("function") or {}
            if fn.get("name"):
                slot["name"] += fn["name"]
            if fn.get("arguments"):
                slot["args"].append(fn["arguments"])

    def result(self) -> dict[str, Any] | None:
        """The assembled answer, or ``None`` when the stream did not finish cleanly (no
        ``[DONE]``, an error event, or a choice without a finish reason): such an answer is
        never cached."""
        if not self._done or not self.valid or not self._choices:
            return None
        if any(acc["finish_reason"] is None for acc in self._choices.values()):
            return None
        choices = []
        for index in sorted(self._choices):
            acc = self._choices[index]
            text = "".join(acc["content"])
            if self._chat:
                message: dict[str, Any] = {"role": acc["role"], "content": text or None}
                if acc["tools"]:
                    message["tool_calls"] = [
                        {
                            "id": t["id"],
                            "type": t["type"],
                            "function": {"name": t["name"], "arguments": "".join(t["args"])},
                        }
                        for _, t in sorted(acc["tools"].items())
                    ]
                elif text == "":
                    message["content"] = ""
                choices.append(
                    {
                        "index": index,
                        "message": message,
                        "finish_reason": acc["finish_reason"],
                        "logprobs": None,
                    }
                )
            else:
                choices.append(
                    {
                        "index": index,
                        "text": text,
                        "finish_reason": acc["finish_reason"],
                        "logprobs": None,
                    }
                )
        out: dict[str, Any] = {
            "id": self._meta.get("id", "cached"),
            "object": "chat.completion" if self._chat else "text_completion",
            "created": self._meta.get("created", 0),
            "model": self._meta.get("model", ""),
            "choices": choices,
        }
        if "system_fingerprint" in self._meta:
            out["system_fingerprint"] = self._meta["system_fingerprint"]
        if self._usage is not None:
            out["usage"] = self._usage
        return out


def assemble_sse(chunks: Iterable[bytes]) -> dict[str, Any] | None:
    """The complete answer a finished stream of SSE bytes adds up to (see :class:`SSEAssembler`)."""
    asm = SSEAssembler()
    for chunk in chunks:
        asm.feed(chunk)
    return asm.result()
