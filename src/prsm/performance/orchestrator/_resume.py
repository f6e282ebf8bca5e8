"""Resuming a stream that broke mid-way: what reached the client, and the continuation.

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

A completion stream (``/v1/completions``) is continued the way every completions server
continues text: the text streamed so far is appended to the prompt (its echo left out, with
``echo`` off), on any other node that serves the model (no extension needed), with the same
rewriting of its events. A stream of several choices (``n > 1``, a list of prompts) goes on
as one request per unfinished choice, merged (:mod:`._continue`, :mod:`._merge`).

To make that possible, :class:`~._tape.Tape` forwards only whole server-sent events (a partial event
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
(tool calls, token-id prompts, a choice index not asked for, an echo not repeating the
prompt, more unfinished choices than ``stream_max_continuations``). Where no resume happens
the caller raises the node's error as before.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection

from .._awaiting import await_with_timeout
from ..errors import RoutingError, UpstreamError
from ..routing._node import NodeSpec
from ..types import AIRequest, RequestKind
from ..upstreams._base import StreamingUpstream
from ._attempt import Attempt, Pipeline, as_upstream_error, is_cancel
from ._continue import (
    choice_count,
    continuation,
    produced,
    several,
    unfinished,
    unsupported,
)
from ._merge import Part, merged
from ._tape import Tape

log = logging.getLogger("prsm.performance.orchestrator")

#: the node, its attempt, its stream, its first chunk, whether the tape rewrites its events
Resumed = tuple[NodeSpec, Attempt, AsyncIterator[bytes], bytes | None, bool]


class Resumer:
    """Takes one broken stream over on other nodes, at most ``stream_max_resumes`` times."""

    __slots__ = ("deadline", "ends_at", "p", "request", "tape", "tried", "upstream",
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

    def _count(self, outcome: str) -> None:
        self.p.metrics.stream_resumes.labels(outcome).inc()

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
        if not tape.ended(choice_count(self.request) or 1):
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
        why = unsupported(tape, request)
        if why is not None:
            self._stop("unsupported", node_id, err, why)
            return None
        # several choices: one continuation each of those unfinished, on one node, merged
        asks = unfinished(tape, request) if several(request) else None
        if asks is not None and len(asks) > s.stream_max_continuations:
            why = f"{len(asks)} unfinished choices, over stream_max_continuations"
            self._stop("unsupported", node_id, err, why)
            return None
        if asks is None:
            cont = continuation(tape, request)
            continues = cont is not request
            tape.segment_base = produced(tape, request, 0, 1)  # (its usage merged from there)
        else:
            cont = asks[0][1]
            continues = any(tape.choices[i].text for i, _ in asks if i in tape.choices)
        # a chat continues on nodes that declare the extension; any node continues a prompt
        needs_resume = continues and request.kind is RequestKind.CHAT
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
            agen = self.upstream.stream(node, cont) if asks is None else self._merged(node, asks)
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
            return node, att, agen, first, asks is None

    def _merged(self, node: NodeSpec, asks: list[tuple[int, AIRequest]]) -> AsyncIterator[bytes]:
        """The continuations of several choices on ``node``, merged into one stream, each
        given the first-token timeout (or the node's ``timeout``, if less) for its first chunk
        and the idle timeout between two. Not the deadline nor the total limit: the merged
        stream's first chunk is awaited within them (``take_over``), and after it the stream
        is the client's, cut only by the driver's total limit (the node not charged)."""
        request, tape, s = self.request, self.tape, self.p.settings
        count = choice_count(request) or 1
        prompts = _prompts(request)
        per = count // prompts  # choices per prompt
        parts = [Part(tape, i, i // per, produced(tape, request, i, count),
                      self.upstream.stream(node, ask)) for i, ask in asks]  # fmt: skip
        asked = {i for i, _ in asks}  # the others had ended: their tokens, an echo apart
        ended = sum(produced(tape, request, i, count) for i in tape.choices if i not in asked)
        first = s.stream_first_token_timeout
        if node.timeout is not None and node.timeout < first:
            first = node.timeout
        return merged(tape, node.id, parts, prompts, ended, first=first,
                      idle=s.stream_idle_timeout)  # fmt: skip


def _prompts(request: AIRequest) -> int:
    """How many prompts ``request`` sends (a chat: one)."""
    prompts = request.payload.get("prompt") if request.kind is RequestKind.COMPLETION else None
    return len(prompts) if isinstance(prompts, list) else 1
