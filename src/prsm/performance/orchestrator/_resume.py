"""Resuming a chat stream that broke mid-way: what reached the client, and the continuation.

Once a stream's first chunk has gone to the client, a failure of its node (the connection
cut, a stall past the idle timeout, a malformed event) used to end the stream with an error
event. With ``stream_max_resumes`` > 0, a chat stream is instead continued on another node
that declares it can (its ``resume: continue_final_message``): the request is sent again with
the text streamed so far as a final assistant message, ``continue_final_message: true`` and
``add_generation_prompt: false`` — vLLM's documented chat-completions extension (SGLang has
the same): "the chat will be formatted so that the final message in the chat is open-ended
[…] the model will continue this message rather than starting a new one". The continuation
streams only the new text; its events are rewritten so the client sees one stream:

* the first stream's ``id`` and ``created`` on every event, the ``role`` not sent twice;
* its ``usage`` (when the client asked for it) merged: the text already streamed moves from
  the continuation's prompt back to the completion (counted as one token per content event,
  which is how vLLM streams by default);
* ``max_tokens`` / ``max_completion_tokens`` lowered by what was already streamed.

To make that possible, :class:`Tape` forwards only whole server-sent events (a partial event
is held back until its end arrives, so a cut never leaves half an event at the client) and
checks each is one (``data: {…}``, ``data: [DONE]``, a comment or a field line), else the
node's :class:`~prsm.performance.errors.MalformedStreamError`. Events are parsed only when a
stream breaks (the events already sent, once) or when a continuation's are rewritten, so a
healthy stream pays for the framing alone.

Every resume is counted in ``prsm_orchestrator_stream_resumes_total{outcome}`` and logged
(warning): ``resumed`` (a node took the stream over), ``failed`` (a resume attempt failed),
``finished`` (the answer had ended: the stream is closed cleanly with ``[DONE]``),
``no_node`` (no other node declares ``resume``), ``no_budget`` (past the request's deadline or
the stream's total limit), ``exhausted`` (``stream_max_resumes`` spent), ``unsupported``
(several choices, tool calls, not a chat request). Where no resume happens the caller raises
the node's error as before.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import AsyncIterator, Collection
from typing import Any

import orjson

from .._awaiting import await_with_timeout
from ..errors import RoutingError, UpstreamError
from ..monitoring._registry import plain_family
from ..routing._node import NodeSpec
from ..types import AIRequest, JSONBody, RequestKind
from ..upstreams._base import StreamingUpstream
from ._attempt import Attempt, Pipeline, as_upstream_error, is_cancel

log = logging.getLogger("prsm.performance.orchestrator")

#: every value of the ``outcome`` label of ``orchestrator_stream_resumes_total``
RESUME_OUTCOMES = (
    "resumed", "failed", "finished", "no_node", "no_budget", "exhausted", "unsupported",
)  # fmt: skip
DONE = b"data: [DONE]\n\n"
_FIELDS = (b"data:", b"event:", b"id:", b"retry:", b":")
#: a block of whole events as OpenAI-style servers send them: each one line, ``data: {…}`` or
#: ``data: [DONE]`` (checked in one pass of the regex engine; anything else is checked event by
#: event)
_PLAIN = re.compile(rb"(?:data: ?(?:\{[^\n]*\}|\[DONE\])\n\n)+")
#: how an OpenAI-style stream's first event may begin (else it is passed on untouched)
_FIRST = (b"data: {", b"data:{", b":", b"event:", b"id:", b"retry:")


class Tape:
    """What of one stream has gone to the client: whole events only (see the module)."""

    __slots__ = (
        "bad", "checked", "choices_ok", "content_events", "created", "done", "finished", "id",
        "off", "parsed", "role_sent", "segment_base", "sent", "tail", "text", "tools",
    )  # fmt: skip

    def __init__(self) -> None:
        self.tail = b""  # the start of an event whose end has not arrived
        self.sent: list[bytes] = []  # blocks of whole events, as forwarded
        self.bad: bytes | None = None  # a malformed event (never forwarded)
        self.checked = False  # whether the first event was seen
        self.off = False  # not an OpenAI-style stream: passed on untouched, never resumed
        self.parsed = 0  # blocks of ``sent`` read into the fields below
        self.id: Any = None
        self.created: Any = None
        self.role_sent = False
        self.text: list[str] = []
        self.content_events = 0
        self.finished = False  # a finish_reason was sent
        self.done = False  # [DONE] was sent
        self.choices_ok = True  # only choice 0 so far
        self.tools = False  # tool calls were streamed
        self.segment_base = 0  # content events before the current node's segment

    def take(self, chunk: bytes, rewrite: bool) -> bytes:
        """The whole events ending in ``chunk`` (rewritten when ``rewrite``: a continuation's);
        the rest is held back. A malformed event stops the block before it (``bad``)."""
        if self.off:
            return chunk
        tail = self.tail
        data = tail + chunk if tail else chunk
        if (  # the common case: whole plain events, nothing held back (one regex pass)
            self.checked
            and not rewrite
            and data.endswith(b"\n\n")
            and _PLAIN.fullmatch(data) is not None
        ):
            self.tail = b""
            self.sent.append(data)
            return data
        if b"\r" in data:
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
            out = b"".join(self._rewrite(ev) for ev in good)
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
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            if choice.get("index", 0) != 0:
                self.choices_ok = False
            delta = choice.get("delta")
            if isinstance(delta, dict):
                if delta.get("role"):
                    self.role_sent = True
                if delta.get("tool_calls") or delta.get("function_call"):
                    self.tools = True
                content = delta.get("content")
                if isinstance(content, str) and content:
                    self.text.append(content)
                    self.content_events += 1
            if choice.get("finish_reason"):
                self.finished = True

    def _rewrite(self, ev: bytes) -> bytes:
        """One continuation event as the first stream's: its id, no second role, usage merged."""
        out: list[bytes] = []
        for line in ev.split(b"\n"):
            if not line.startswith(b"data:"):
                out.append(line)
                continue
            raw = line[5:].strip()
            if raw == b"[DONE]":
                out.append(b"data: [DONE]")
                continue
            obj = orjson.loads(raw)
            if isinstance(obj, dict):
                if self.id is not None and "id" in obj:
                    obj["id"] = self.id
                if self.created is not None and "created" in obj:
                    obj["created"] = self.created
                for choice in obj.get("choices") or ():
                    delta = choice.get("delta") if isinstance(choice, dict) else None
                    if isinstance(delta, dict) and self.role_sent:
                        delta.pop("role", None)
                usage = obj.get("usage")
                if isinstance(usage, dict):
                    obj["usage"] = merge_usage(usage, self.segment_base)
            out.append(b"data: " + orjson.dumps(obj))
        return b"\n".join(out) + b"\n\n"

    def begin_segment(self) -> None:
        """A new node takes the stream over: the broken one's partial event is dropped."""
        self.read()
        self.tail = b""
        self.bad = None
        self.segment_base = self.content_events

    def unsupported(self, request: AIRequest) -> str | None:
        """Why this stream cannot be continued elsewhere (``None``: it can)."""
        if request.kind is not RequestKind.CHAT:
            return f"a {request.kind.value} request"
        if not self.choices_ok:
            return "several choices"
        if self.tools:
            return "tool calls"
        payload = request.payload
        if not isinstance(payload.get("messages"), list):
            return "no messages list"
        return None

    def continuation(self, request: AIRequest) -> AIRequest:
        """``request`` asking a node to continue the text sent so far (the request itself while
        no text was sent)."""
        if not self.text:
            return request
        payload = request.payload
        data = dict(payload.data if type(payload) is JSONBody else payload)
        messages = list(data["messages"])
        text = "".join(self.text)
        last = messages[-1] if messages else None
        if (
            data.get("continue_final_message")
            and isinstance(last, dict)
            and last.get("role") == "assistant"
            and isinstance(last.get("content"), str)
        ):  # the client prefilled the answer itself: extend its prefill
            messages[-1] = {**last, "content": last["content"] + text}
        else:
            messages.append({"role": "assistant", "content": text})
        data["messages"] = messages
        data["continue_final_message"] = True
        data["add_generation_prompt"] = False
        data["stream"] = True
        for key in ("max_tokens", "max_completion_tokens"):
            limit = data.get(key)
            if isinstance(limit, int) and not isinstance(limit, bool):
                data[key] = max(1, limit - self.content_events)
        return dataclasses.replace(request, payload=data)


def resumable(request: AIRequest) -> bool:
    """Whether ``request`` is a chat request with messages (its body not decoded for that:
    the gateway passes bodies on unread)."""
    if request.kind is not RequestKind.CHAT:
        return False
    payload = request.payload
    if type(payload) is JSONBody:
        return b'"messages"' in payload.raw
    return isinstance(payload.get("messages"), list)


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


Resumed = tuple[NodeSpec, Attempt, AsyncIterator[bytes], bytes | None]


class Resumer:
    """Takes one broken stream over on other nodes, at most ``stream_max_resumes`` times."""

    __slots__ = ("counter", "deadline", "ends_at", "p", "request", "tape", "tried", "upstream",
                 "used")  # fmt: skip

    def __init__(
        self,
        p: Pipeline,
        upstream: StreamingUpstream,
        request: AIRequest,
        tape: Tape,
        *,
        deadline: float,
        ends_at: float,
        tried: Collection[str],
    ) -> None:
        self.p = p
        self.upstream = upstream
        self.request = request
        self.tape = tape
        self.deadline = deadline
        self.ends_at = ends_at
        self.tried = set(tried)
        self.used = 0
        self.counter = plain_family(
            p.metrics.registry, "counter", "orchestrator_stream_resumes",
            "Streams that broke after their first chunk, by what their resume did.", ["outcome"],
        )  # fmt: skip

    def _count(self, outcome: str) -> None:
        self.counter.labels(outcome).inc()

    def _stop(self, outcome: str, node_id: str, err: BaseException, why: str) -> None:
        self._count(outcome)
        log.warning(
            "request %s: stream broke on %s after %d event(s) (%s); not resumed: %s",
            self.request.id, node_id, self.tape.content_events, err, why,
        )  # fmt: skip

    def finished(self, node_id: str, err: BaseException) -> bool:
        """Whether the answer had ended when the node broke off (then the stream is ended
        cleanly; counted and logged)."""
        tape = self.tape
        tape.read()
        if not (tape.finished or tape.done):
            return False
        self._count("finished")
        log.warning(
            "request %s: stream broke on %s after its answer ended (%s); closed cleanly",
            self.request.id, node_id, err,
        )  # fmt: skip
        return True

    async def take_over(self, node_id: str, err: UpstreamError) -> Resumed | None:
        """A node that continues the stream, its attempt, its stream and first chunk; or
        ``None`` when none can (counted and logged), and the caller raises ``err``."""
        p, tape, request = self.p, self.tape, self.request
        s = p.settings
        self.tried.add(node_id)
        tape.begin_segment()
        why = tape.unsupported(request)
        if why is not None:
            self._stop("unsupported", node_id, err, why)
            return None
        cont = tape.continuation(request)
        needs_resume = cont is not request
        while True:
            if self.used >= s.stream_max_resumes:
                self._stop("exhausted", node_id, err, f"{self.used} resume(s) spent")
                return None
            now = p.monotonic()
            wait = min(self.deadline - now, self.ends_at - now, s.stream_first_token_timeout)
            if wait <= 0:
                self._stop("no_budget", node_id, err, "past the request's deadline")
                return None
            exclude = set(self.tried)
            if needs_resume:
                exclude.update(n.id for n in p.registry if n.resume is None)
            try:
                node = p.pick(cont, now, exclude)
            except RoutingError as exc:
                self._stop("no_node", node_id, err, f"no node declares resume ({exc})")
                return None
            self.used += 1
            self.tried.add(node.id)
            if node.timeout is not None and node.timeout < wait:
                wait = node.timeout
            begun = p.begin(node, now)
            if type(begun) is not Attempt:
                self._count("failed")
                continue
            att = begun
            agen = self.upstream.stream(node, cont)
            try:
                first: bytes | None = await await_with_timeout(agen.__anext__(), wait)
            except StopAsyncIteration:
                first = None
            except BaseException as exc:
                aclose = getattr(agen, "aclose", None)
                if aclose is not None:
                    await aclose()
                if is_cancel(exc):
                    att.abandon()
                    raise
                failure = as_upstream_error(node.id, exc)
                att.fail(failure, p.monotonic())
                self._count("failed")
                log.warning(
                    "request %s: resuming its stream on %s failed: %s", request.id, node.id,
                    failure,
                )  # fmt: skip
                continue
            att.answered(p.monotonic())
            self._count("resumed")
            log.warning(
                "request %s: stream broke on %s after %d event(s) (%s); resumed on %s "
                "(resume %d of at most %d)",
                request.id, node_id, tape.content_events, err, node.id, self.used,
                s.stream_max_resumes,
            )  # fmt: skip
            return node, att, agen, first
