"""Several choices' continuations merged into the one stream the client reads (see
:mod:`._continue`): each continuation's events framed whole on their own, rewritten as the
first stream's (its ``id``, ``created`` and ``model``; the choice's own ``index``; no second
``role``), interleaved as they arrive; their usages held back and sent as one, for the whole
answer, before one ``[DONE]``. Each continuation is held to a single stream's first-token and
idle limits on its own (one that stalls while the others stream fails the merged stream at
its limit, as a stalled stream would); the driver keeps the total limit on the whole.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson

from .._awaiting import await_with_timeout
from ..errors import MalformedStreamError, StreamTimeoutError
from ._tape import DONE, Tape, rewrite_event

log = logging.getLogger("prsm.performance.orchestrator")

#: closings of continuations left behind (held so that they are not collected mid-way)
_CLOSING: set[asyncio.Future[None]] = set()


class Part:
    """One choice's continuation: its stream, framing, and what it sent of its own."""

    __slots__ = ("agen", "chunks", "done", "events", "framer", "index", "prefix", "prompt",
                 "role", "template", "usage")  # fmt: skip

    def __init__(
        self, tape: Tape, index: int, prompt: int, prefix: int, agen: AsyncIterator[bytes]
    ) -> None:
        seen = tape.choices.get(index)
        self.agen = agen
        self.index = index  # the choice's index in the first stream
        self.prompt = prompt  # which of the request's prompts it answers (a chat's: 0)
        self.prefix = prefix  # the tokens it streamed before (its continuation's prompt has)
        self.role = seen is not None and seen.role  # its role was sent
        self.framer = Tape()  # (for its framing only)
        self.events = 0
        self.chunks = 0  # chunks it sent
        self.done = False  # it sent [DONE]
        self.usage: dict[str, Any] | None = None
        self.template: dict[str, Any] | None = None  # its usage event, less the usage

    def take(self, tape: Tape, node_id: str, chunk: bytes) -> bytes:
        """The whole events ending in ``chunk``, rewritten (see the module)."""
        framer = self.framer
        block = framer.take(chunk, False)
        if framer.off:  # its first event carries no JSON object: it cannot be merged
            raise MalformedStreamError(node_id, self.events, chunk)
        framer.sent.clear()
        evs = block.split(b"\n\n")
        evs.pop()
        return b"".join([self._rewrite(tape, ev) for ev in evs])

    def end(self, tape: Tape, node_id: str) -> bytes:
        """What was held back when the continuation ended cleanly (an event left open)."""
        return self.take(tape, node_id, b"\n\n") if self.framer.tail.strip() else b""

    def _rewrite(self, tape: Tape, ev: bytes) -> bytes:
        out, self.role = rewrite_event(ev, tape, self.role, self._step)
        self.events += 1
        return out

    def _step(self, obj: dict[str, Any] | None) -> bool:
        """(``_rewrite``'s own step: ``[DONE]`` and the usage event held back, the usage
        kept, the choice's own index.)"""
        if obj is None:
            self.done = True
            return False
        usage = obj.pop("usage", None)
        if isinstance(usage, dict):
            self.usage = usage
            if not obj.get("choices"):  # the usage event: held back (see ``closing``)
                self.template = obj
                return False
        for choice in obj.get("choices") or ():
            if isinstance(choice, dict):
                choice["index"] = self.index
        return True


async def merged(
    tape: Tape,
    node_id: str,
    parts: list[Part],
    prompts: int,
    ended: int,
    *,
    first: float,
    idle: float,
) -> AsyncIterator[bytes]:
    """The continuations' events as one stream (see the module) of an answer to ``prompts``
    prompts whose choices that had ended streamed ``ended`` tokens; the first to fail fails it
    (the others closed), and the stream goes on from what was sent, as any broken one. Each
    continuation is held to a single stream's limits: ``first`` seconds for its first chunk,
    ``idle`` between two; one that misses its limit fails as a stream that stalls does (a
    :class:`~prsm.performance.errors.StreamTimeoutError`), whatever the others send."""
    running: dict[asyncio.Future[bytes], Part] = {}
    try:
        for part in parts:
            running[_step(part, first)] = part
        while running:
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            out: list[bytes] = []
            bad: bytes | None = None
            for fut in sorted(done, key=lambda f: running[f].index):
                part = running.pop(fut)
                try:
                    chunk = fut.result()
                except StopAsyncIteration:
                    out.append(part.end(tape, node_id))
                    continue
                except Exception as exc:  # (its stream ended with the error)
                    await _stop(running)
                    aclose = getattr(part.agen, "aclose", None)
                    if aclose is not None:  # (one cut at its limit may be left open)
                        await aclose()
                    if isinstance(exc, TimeoutError):
                        raise _stalled(node_id, part, first, idle) from exc
                    raise
                part.chunks += 1
                try:
                    out.append(part.take(tape, node_id, chunk))
                except Exception:  # an event that is not JSON, a stream not OpenAI-style
                    running[fut] = part  # (its stream is closed with the others)
                    await _stop(running)
                    raise
                if part.framer.bad is not None:
                    bad = part.framer.bad
                    running[fut] = part  # (its stream is closed with the others)
                    break
                running[_step(part, idle)] = part
            block = b"".join(out)
            if block:
                yield block
            if bad is not None:
                await _stop(running)
                raise MalformedStreamError(node_id, sum(p.events for p in parts), bad)
        yield closing(parts, prompts, ended)
    finally:
        for fut, part in running.items():  # closed or cancelled mid-way: end them unawaited
            fut.cancel()
            fut.add_done_callback(functools.partial(_abandon, part))


def closing(parts: list[Part], prompts: int, ended: int) -> bytes:
    """The events after the last continuation ended: one usage for the whole answer (when
    each continuation sent its own, and each of the ``prompts`` prompts has one) and
    ``[DONE]`` (when each sent it)."""
    out = b""
    template = next((p.template for p in parts if p.template is not None), None)
    usage = merged_usage(parts, prompts, ended)
    if template is not None and usage is not None:
        out = b"data: " + orjson.dumps({**template, "choices": [], "usage": usage}) + b"\n\n"
    if all(p.done for p in parts):
        out += DONE
    return out


def merged_usage(parts: list[Part], prompts: int, ended: int) -> dict[str, Any] | None:
    """The whole answer's usage from each continuation's: a prompt's tokens once (a
    continuation's less the text it was given, one token per content event, as for one
    choice), the completion every choice's tokens, those of the choices that had ended before
    the break (``ended``) counted from their content events. ``None`` if a continuation sent
    none, or if one of the ``prompts`` prompts has no continuation (all its choices had ended
    before the break: its prompt tokens are known nowhere, and a usage without them would be
    wrong)."""
    prompt = completion = 0
    asked_prompts: set[int] = set()
    for part in parts:
        usage = part.usage
        if usage is None:
            return None
        p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not isinstance(p, int) or not isinstance(c, int):
            return None
        if part.prompt not in asked_prompts:
            asked_prompts.add(part.prompt)
            prompt += max(0, p - part.prefix)
        completion += c + part.prefix
    if len(asked_prompts) < prompts:
        log.warning(
            "usage of a resumed stream not sent: %d of its %d prompts had every choice ended "
            "before the break, their prompt tokens unknown", prompts - len(asked_prompts),
            prompts,
        )  # fmt: skip
        return None
    completion += ended
    first = parts[0].usage
    assert first is not None
    return {**first, "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip


def _step(part: Part, limit: float) -> asyncio.Future[bytes]:
    """``part``'s next chunk, awaited at most ``limit`` seconds (else ``TimeoutError``)."""
    return asyncio.ensure_future(await_with_timeout(part.agen.__anext__(), limit))


def _stalled(node_id: str, part: Part, first: float, idle: float) -> StreamTimeoutError:
    """The error of ``part`` past its limit: a stream's that sent no first chunk in time, or
    that stalled between two."""
    phase, limit = ("idle", idle) if part.chunks else ("first_token", first)
    return StreamTimeoutError(node_id, phase, limit, part.chunks,
                              f"orchestrator.stream_{phase}_timeout")  # fmt: skip


async def _stop(running: dict[asyncio.Future[bytes], Part]) -> None:
    """Cancel the continuations still waiting for a chunk and close every one left."""
    for fut in running:
        fut.cancel()
    if running:
        await asyncio.wait(running)
    for fut, part in running.items():
        aclose = _settled(part, fut)
        if aclose is not None:
            await aclose()
    running.clear()


def _settled(part: Part, fut: asyncio.Future[bytes]) -> Any:
    """A continuation given up (its step done or cancelled): logged if it had failed; its
    ``aclose`` (its connection too; nothing to do for one that ended)."""
    if not fut.cancelled():
        exc = fut.exception()
        if exc is not None and not isinstance(exc, StopAsyncIteration):
            log.warning("a continuation of choice %d given up had failed too: %s", part.index, exc)
    return getattr(part.agen, "aclose", None)


def _abandon(part: Part, fut: asyncio.Future[bytes]) -> None:
    """``_settled``, its closing left to run on its own (the stream was closed mid-way)."""
    aclose = _settled(part, fut)
    if aclose is not None:
        task = asyncio.ensure_future(aclose())
        _CLOSING.add(task)
        task.add_done_callback(_closed)


def _closed(task: asyncio.Future[None]) -> None:
    _CLOSING.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("closing a continuation given up failed: %s", task.exception())
