"""The requests that continue a broken stream (see :mod:`._resume`): whether it can be, and
one request for each choice still unfinished.

A stream of one choice goes on as one request whose events are rewritten as the first
stream's (:meth:`~._tape.Tape.take`). A stream of several — ``n > 1``, or a completion's list
of prompts (choice ``i * n + j`` answers prompt ``i``, as OpenAI numbers them) — goes on as one
request for each choice whose ``finish_reason`` was not sent, each with ``n`` 1 and its own
text so far (and its own prompt), merged into the one stream by :mod:`._merge`. One request
with ``n`` set to the unfinished count cannot do it: each choice continues a different text.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..types import AIRequest, JSONBody, RequestKind
from ._tape import Tape


def unsupported(tape: Tape, request: AIRequest) -> str | None:
    """Why the stream ``tape`` recorded cannot be continued elsewhere (``None``: it can)."""
    payload = request.payload
    kind = request.kind
    if kind is RequestKind.COMPLETION:
        prompts = payload.get("prompt")
        if not isinstance(prompts, str) and not (
            isinstance(prompts, list) and prompts and all(isinstance(p, str) for p in prompts)
        ):
            return "a prompt that is neither a string nor a list of strings"
    elif kind is not RequestKind.CHAT:
        return f"a {kind.value} request"
    elif tape.tools:  # no OpenAI-style API continues a partial tool call
        return "tool calls"
    elif not isinstance(payload.get("messages"), list):
        return "no messages list"
    count = choice_count(request)
    if count is None:
        return "an n that is not a positive integer"
    if any(not 0 <= i < count for i in tape.choices):
        return "a choice index the request did not ask for"
    if kind is RequestKind.COMPLETION and payload.get("echo"):
        for i, seen in tape.choices.items():
            if seen.text and not "".join(seen.text).startswith(prompt_of(request, i, count)):
                return "an echo that does not repeat the prompt whole"
    return None


def several(request: AIRequest) -> bool:
    """Whether ``request`` asks for several choices (or could: a list of prompts), so that
    its stream goes on as one request per unfinished choice."""
    prompts = request.payload.get("prompt") if request.kind is RequestKind.COMPLETION else None
    return isinstance(prompts, list) or choice_count(request) != 1


def unfinished(tape: Tape, request: AIRequest) -> list[tuple[int, AIRequest]]:
    """The choices whose ``finish_reason`` was not sent, each with the request that continues
    it (of a supported stream)."""
    count = choice_count(request)
    assert count is not None  # (``unsupported`` said so)
    out: list[tuple[int, AIRequest]] = []
    for i in range(count):
        seen = tape.choices.get(i)
        if seen is None or not seen.finished:
            out.append((i, continuation(tape, request, i, count)))
    return out


def continuation(tape: Tape, request: AIRequest, index: int = 0, count: int = 1) -> AIRequest:
    """``request`` asking a node to continue choice ``index`` (of ``count``) from the text
    sent so far: a chat's text as a final assistant message to continue, a completion's
    appended to its prompt (its echo left out, and ``echo`` off; kept on for a choice that
    sent nothing, whose echo the client has yet to see), one choice (``n`` 1), the
    token limits lowered by what the choice already streamed. The request itself while a
    single choice sent no text."""
    seen = tape.choices.get(index)
    text = "".join(seen.text) if seen is not None else ""
    if not text and count == 1:
        return request
    payload = request.payload
    data = dict(payload.data if type(payload) is JSONBody else payload)
    if request.kind is RequestKind.COMPLETION:
        prompt = prompt_of(request, index, count)
        if data.get("echo") and text:  # its echo reached the client: not sent again
            text = text[len(prompt) :]  # (``unsupported`` checked it starts with it)
            data["echo"] = False
        data["prompt"] = prompt + text
    elif text:
        _continue_chat(data, text)
    if "n" in data:
        data["n"] = 1
    data["stream"] = True
    done = produced(tape, request, index, count)
    for key in ("max_tokens", "max_completion_tokens"):
        limit = data.get(key)
        if isinstance(limit, int) and not isinstance(limit, bool):
            data[key] = max(1, limit - done)
    return dataclasses.replace(request, payload=data)


def produced(tape: Tape, request: AIRequest, index: int, count: int) -> int:
    """The tokens choice ``index`` streamed: one per content event (as vLLM streams by
    default), less an event that only echoed the prompt (vLLM sends the echo with the first
    token; a server may send it alone)."""
    seen = tape.choices.get(index)
    if seen is None:
        return 0
    if (
        seen.text
        and request.kind is RequestKind.COMPLETION
        and request.payload.get("echo")
        and seen.text[0] == prompt_of(request, index, count)
    ):
        return seen.events - 1
    return seen.events


def _continue_chat(data: dict[str, Any], text: str) -> None:
    messages = list(data["messages"])
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


def choice_count(request: AIRequest) -> int | None:
    """How many choices ``request`` asks for: ``n`` for each prompt; ``None`` for an ``n``
    that is not a positive integer."""
    payload = request.payload
    n = payload.get("n")
    if n is None:
        n = 1
    elif not isinstance(n, int) or isinstance(n, bool) or n < 1:
        return None
    prompts = payload.get("prompt") if request.kind is RequestKind.COMPLETION else None
    return n * len(prompts) if isinstance(prompts, list) else n


def prompt_of(request: AIRequest, index: int, count: int) -> str:
    """The prompt choice ``index`` (of ``count``) of a completion answers."""
    prompts = request.payload.get("prompt")
    if not isinstance(prompts, list):
        return str(prompts)
    prompt: str = prompts[index // (count // len(prompts))]
    return prompt
