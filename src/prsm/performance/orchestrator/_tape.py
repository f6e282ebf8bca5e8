"""What of a stream has reached the client, in whole server-sent events (:class:`Tape`), and
the request that asks another node to continue it (see :mod:`._resume`).

A healthy stream pays only for the framing (one regex pass over each chunk); events are
parsed when the stream breaks (those already sent, once) or when a continuation's are
rewritten as the first stream's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import msgspec
import orjson

from ..types import AIRequest, JSONBody, RequestKind

log = logging.getLogger("prsm.performance.orchestrator")

DONE = b"data: [DONE]\n\n"
_FIELDS = (b"data:", b"event:", b"id:", b"retry:", b":")
#: a block of whole events as OpenAI-style servers send them: each one line, ``data: {…}`` or
#: ``data: [DONE]`` (checked in one pass of the regex engine; anything else is checked event by
#: event). The line is taken whole at once (a possessive ``.*+``: any byte but a newline, as
#: there is no DOTALL; no backtracking) and must end with ``}`` (the look-behind). ``.`` scans
#: faster than the same set written ``[^\n]``: 2.6 µs for the simulator's 3.9 KB, 18-event
#: block against 3.8 µs (and 2.7 µs with ``\{.*\}``, which scans each line twice). The events
#: are possessive too (``++``: an event, once matched, is never given back; no event could
#: match another way), which spares the engine its backtracking marks: 29.6k instructions for
#: that block against 31.6k.
_PLAIN = re.compile(rb"(?:data: ?(?:\{.*+(?<=\})|\[DONE\])\n\n)++")
#: how the first event of a block taken whole on the fast path must begin (see ``_FIRST``)
_OBJECT = (b"data: {", b"data:{")
#: how an OpenAI-style stream's first event may begin (else it is passed on untouched)
_FIRST = (b"data: {", b"data:{", b":", b"event:", b"id:", b"retry:")
#: read once: an enum member's lookup on its class costs about 0.3 µs, and every stream asks
_CHAT, _COMPLETION = RequestKind.CHAT, RequestKind.COMPLETION
# _FIND: bytes are searched with ``find``, not ``in``: ``needle in data`` first tries the needle
# as an integer (a byte's value), and the TypeError it makes and drops costs about 2,000
# instructions (callgrind), more than the search; ``find`` searches at once.


class Choice:
    """What of one choice (its ``index``) has gone to the client (read when a stream breaks)."""

    __slots__ = ("events", "finished", "role", "text")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.events = 0  # content events (one token each, as vLLM streams by default)
        self.role = False  # its role was sent
        self.finished = False  # its finish_reason was sent


class Tape(msgspec.Struct, eq=False):
    """What of one stream has gone to the client: whole events only (see the module). A
    struct (made in C, its list and dict new for each: one a stream, at a fraction of the cost
    of a class with an ``__init__``); compared by identity, as an object."""

    tail: bytes = b""  # the start of an event whose end has not arrived
    sent: list[bytes] = []  # blocks of whole events, as forwarded
    bad: bytes | None = None  # a malformed event (never forwarded)
    checked: bool = False  # whether the first event was seen
    off: bool = False  # not an OpenAI-style stream: passed on untouched, never resumed
    parsed: int = 0  # blocks of ``sent`` read into the fields below
    id: Any = None
    created: Any = None
    model: Any = None
    choices: dict[int, Choice] = {}  # by index
    done: bool = False  # [DONE] was sent
    tools: bool = False  # tool calls were streamed
    segment_base: int = 0  # tokens streamed before the current node's segment

    def take(self, chunk: bytes, rewrite: bool) -> bytes:
        """The whole events ending in ``chunk`` (rewritten when ``rewrite``: a continuation's);
        the rest is held back. A malformed event stops the block before it (``bad``)."""
        if self.off:
            return chunk
        tail = self.tail
        data = tail + chunk if tail else chunk
        if (  # the common case: whole plain events, nothing held back (one regex pass);
            # a stream's first block too, when it starts with an object (as ``_FIRST`` asks)
            not rewrite
            and data.endswith(b"\n\n")
            and (self.checked or data.startswith(_OBJECT))
            and _PLAIN.fullmatch(data) is not None
        ):
            if tail:  # (fields set only when they change: a struct's set costs more)
                self.tail = b""
            if not self.checked:
                self.checked = True
            self.sent.append(data)
            return data
        if data.find(b"\r") >= 0:  # (``find``, not ``in``: see _FIND)
            data = data.replace(b"\r\n", b"\n")
        cut = data.rfind(b"\n\n")
        if cut < 0:
            self.tail = data
            return b""
        if not self.checked:
            self.checked = True
            if not data.startswith(_FIRST):
                self.off = True  # its first event carries no JSON object: not ours to read
                self.tail = b""
                return data
        cut += 2
        block, self.tail = data[:cut], data[cut:]
        if not rewrite and _PLAIN.fullmatch(block) is not None:  # the common case: one pass
            self.sent.append(block)
            return block
        events = block.split(b"\n\n")
        events.pop()  # the empty piece after the last separator
        good: list[bytes] = []
        for ev in events:
            if not _wellformed(ev):
                self.bad = ev
                self.tail = b""
                break
            good.append(ev)
        if rewrite:
            out = b"".join(map(self._rewrite, good))  # (no closure: ``self`` stays a local)
        elif len(good) == len(events):
            out = block
        else:
            out = b"".join(ev + b"\n\n" for ev in good)
        if out:
            self.sent.append(out)
        return out

    def whole_events(self) -> int:
        """How many whole events have been sent."""
        return sum(block.count(b"\n\n") for block in self.sent)

    def rest(self) -> bytes:
        """What was held back when the node ended its stream cleanly (passed on as it is)."""
        tail, self.tail = self.tail, b""
        return tail

    def read(self) -> None:
        """Bring the fields up to date with the events sent (parsed once each)."""
        sent = self.sent
        while self.parsed < len(sent):
            block = sent[self.parsed]
            self.parsed += 1
            for ev in block.split(b"\n\n"):
                for obj in _payloads(ev):
                    if obj is None:
                        self.done = True
                    else:
                        self._note(obj)

    def _note(self, obj: dict[str, Any]) -> None:
        if self.id is None:
            self.id = obj.get("id")
            self.created = obj.get("created")
            self.model = obj.get("model")
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            if not isinstance(index, int):
                continue
            seen = self.choices.get(index)
            if seen is None:
                seen = self.choices[index] = Choice()
            text = choice.get("text")  # a completion's chunk
            if isinstance(text, str) and text:
                seen.text.append(text)
                seen.events += 1
            delta = choice.get("delta")
            if isinstance(delta, dict):
                if delta.get("role"):
                    seen.role = True
                if delta.get("tool_calls") or delta.get("function_call"):
                    self.tools = True
                content = delta.get("content")
                if isinstance(content, str) and content:
                    seen.text.append(content)
                    seen.events += 1
            if choice.get("finish_reason"):
                seen.finished = True

    @property
    def content_events(self) -> int:
        """Content events sent, all choices together."""
        return sum(c.events for c in self.choices.values())

    def ended(self, count: int) -> bool:
        """Whether the answer had ended: ``[DONE]`` sent, or each of its ``count`` choices'
        finish_reason."""
        if self.done:
            return True
        choices = self.choices
        return all((c := choices.get(i)) is not None and c.finished for i in range(count))

    def _rewrite(self, ev: bytes) -> bytes:
        """One continuation event as the first stream's: its id, no second role, usage merged."""
        first = self.choices.get(0)
        return rewrite_event(ev, self, first is not None and first.role, self._step)[0]

    def _step(self, obj: dict[str, Any] | None) -> bool:
        """(``_rewrite``'s own step: ``[DONE]`` and every object kept, a usage merged.)"""
        if obj is not None:
            usage = obj.get("usage")
            if isinstance(usage, dict):
                obj["usage"] = merge_usage(usage, self.segment_base)
        return True

    def stamp(self, obj: dict[str, Any]) -> None:
        """A continuation's event with the first stream's ``id``, ``created`` and ``model``."""
        if self.id is not None and "id" in obj:
            obj["id"] = self.id
        if self.created is not None and "created" in obj:
            obj["created"] = self.created
        if self.model is not None and "model" in obj:
            obj["model"] = self.model

    def begin_segment(self) -> None:
        """A new node takes the stream over: the broken one's partial event is dropped."""
        self.read()
        self.tail = b""
        self.bad = None


def resumable(request: AIRequest) -> bool:
    """Whether ``request`` is a chat request with messages or a completion request with a
    prompt (its body not decoded for that: the gateway passes bodies on unread)."""
    kind = request.kind
    if kind is _CHAT:
        field, key = b'"messages"', "messages"
    elif kind is _COMPLETION:
        field, key = b'"prompt"', "prompt"
    else:
        return False
    payload = request.payload
    if type(payload) is JSONBody:
        return payload.raw.find(field) >= 0  # (see _FIND)
    return payload.get(key) is not None


def rewrite_event(
    ev: bytes, tape: Tape, role: bool, step: Callable[[dict[str, Any] | None], bool]
) -> tuple[bytes, bool]:
    """A continuation's event ``ev`` (well formed) as the first stream's, and whether a role
    has been sent now: lines other than ``data:`` kept; each ``data:`` object stamped with
    the first stream's fields (:meth:`Tape.stamp`), given to ``step`` (``None`` for
    ``[DONE]``), which may change it and says whether it is kept, then a ``role`` dropped
    from its deltas once one was sent (``role``). An event whose ``data:`` lines were all
    dropped is dropped whole (``b""``)."""
    out: list[bytes] = []
    data = kept = 0
    for line in ev.split(b"\n"):
        if not line.startswith(b"data:"):
            out.append(line)
            continue
        data += 1
        raw = line[5:].strip()
        if raw == b"[DONE]":
            if step(None):
                out.append(b"data: [DONE]")
                kept += 1
            continue
        obj = orjson.loads(raw)  # (an object: ``_wellformed`` checked it)
        tape.stamp(obj)
        if not step(obj):
            continue
        for choice in obj.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict):
                if role:
                    delta.pop("role", None)
                elif delta.get("role"):
                    role = True
        out.append(b"data: " + orjson.dumps(obj))
        kept += 1
    if data and not kept:
        return b"", role
    return b"\n".join(out) + b"\n\n", role


def _wellformed(ev: bytes) -> bool:
    """Each line of ``ev`` is an SSE field or comment, and a ``data:`` line carries a JSON
    object or ``[DONE]`` (an empty event is a keep-alive)."""
    for line in ev.split(b"\n"):
        if not line:
            continue
        if line.startswith(b"data:"):
            raw = line[5:].strip()
            if raw != b"[DONE]" and not (raw.startswith(b"{") and raw.endswith(b"}")):
                return False
        elif not line.startswith(_FIELDS):
            return False
    return True


def _payloads(ev: bytes) -> list[dict[str, Any] | None]:
    """The JSON objects of an event's ``data:`` lines (``None`` for ``[DONE]``)."""
    out: list[dict[str, Any] | None] = []
    for line in ev.split(b"\n"):
        if line.startswith(b"data:"):
            raw = line[5:].strip()
            if raw == b"[DONE]":
                out.append(None)
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                log.warning("a stream event sent to the client is not JSON (%s): %r", exc, raw)
                continue
            if isinstance(obj, dict):
                out.append(obj)
    return out


def merge_usage(usage: dict[str, Any], prior: int) -> dict[str, Any]:
    """A continuation's usage as the whole answer's: the ``prior`` tokens it was given as its
    final message move from its prompt back to the completion (the total is unchanged)."""
    out = dict(usage)
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        moved = min(prior, prompt)
        out["prompt_tokens"] = prompt - moved
        out["completion_tokens"] = completion + moved
    return out
