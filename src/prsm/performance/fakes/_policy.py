"""What the upstream simulator decides for one request, and the OpenAI-shaped bodies it sends.

Pure functions of the settings, the request and an injected :class:`random.Random`.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import struct
from dataclasses import dataclass
from typing import Any

import orjson

from ._settings import SimSettings


@dataclass(frozen=True, slots=True)
class Decision:
    """``error`` (``None``, ``"500"``, ``"429"``, ``"timeout"``, ``"drop"``) and the delay
    in seconds before the answer (before the first token, for streams)."""

    error: str | None
    delay: float


def draw_latency(settings: SimSettings, rng: random.Random) -> float:
    """One latency in seconds from the configured distribution (never negative)."""
    mean, std = settings.latency, settings.latency_std
    if settings.distribution == "fixed" or std <= 0:
        return mean
    if settings.distribution == "normal":
        return max(0.0, rng.gauss(mean, std))
    # lognormal with the given mean and standard deviation of the latency itself
    sigma2 = math.log1p((std / mean) ** 2)
    mu = math.log(mean) - sigma2 / 2
    return rng.lognormvariate(mu, math.sqrt(sigma2))


def decide(settings: SimSettings, rng: random.Random, *, stream: bool) -> Decision:
    """Whether this request fails (and how), and how long it waits first."""
    error = None
    if settings.error_rate > 0 and rng.random() < settings.error_rate:
        kinds = settings.error_kinds
        error = kinds[0] if len(kinds) == 1 else rng.choice(kinds)
    delay = settings.ttft if stream else draw_latency(settings, rng)
    return Decision(error, delay)


def answer_tokens(settings: SimSettings, body: dict[str, Any], *, stream: bool) -> int:
    """How many tokens the answer has: the request's ``max_tokens`` or the default."""
    wanted = body.get("max_tokens") or body.get("max_completion_tokens")
    n = wanted if isinstance(wanted, int) and wanted > 0 else settings.completion_tokens
    return min(n, settings.max_stream_tokens) if stream else n


def prompt_tokens(body: dict[str, Any]) -> int:
    """A rough token count of the prompt (words), enough for usage figures."""
    messages = body.get("messages")
    if isinstance(messages, list):
        text = " ".join(
            m.get("content", "")
            for m in messages
            if isinstance(m, dict) and isinstance(m.get("content"), str)
        )
    else:
        prompt = body.get("prompt", "")
        text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
    return max(1, len(text.split()))


def _word(i: int, choice: int = 0) -> str:
    """Token ``i`` of choice ``choice``'s answer: ``tok0 tok1 …`` for the first choice,
    ``c1.tok0 c1.tok1 …`` for the second, and so on (each choice says something else)."""
    word = f"c{choice}.tok{i}" if choice else f"tok{i}"
    return f" {word}" if i else word


_CHOICE = re.compile(r"c(\d+)\.")


def choices(body: dict[str, Any]) -> int:
    """How many choices the answer has: ``n`` (1 by default) for each prompt (a completion may
    send a list of prompts; choice ``i * n + j`` answers prompt ``i``, as OpenAI numbers them).
    Raises :class:`ValueError` for an ``n`` that is not a positive integer, as vLLM does."""
    n = body.get("n", 1)
    if n is None:
        n = 1
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return n * len(prompts(body))


def prompts(body: dict[str, Any]) -> list[str]:
    """A completion's prompts as text: one string, a list of strings, or token ids (their
    numbers, spaced); a chat has one (empty: its messages are not echoed)."""
    if "messages" in body:
        return [""]
    prompt = body.get("prompt", "")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, (str, list)) for p in prompt):
        return [p if isinstance(p, str) else " ".join(map(str, p)) for p in prompt]
    return [" ".join(map(str, prompt)) if isinstance(prompt, list) else str(prompt)]


def completion_body(
    kind: str, settings: SimSettings, body: dict[str, Any], request_no: int, now: int
) -> bytes:
    """A full (non-streamed) answer to a chat (``kind="chat"``) or completion request: every
    choice (see :func:`choices`), a completion's with its prompt first when ``echo`` is set."""
    n = answer_tokens(settings, body, stream=False)
    count = choices(body)
    texts = ["".join(_word(i, c) for i in range(n)) for c in range(count)]
    p = prompt_tokens(body)
    usage = {"prompt_tokens": p, "completion_tokens": n * count, "total_tokens": p + n * count}
    model = body.get("model") or settings.models[0]
    if kind == "chat":
        return orjson.dumps(
            {
                "id": f"chatcmpl-{settings.name}-{request_no}",
                "object": "chat.completion",
                "created": now,
                "model": model,
                "system_fingerprint": settings.name,
                "choices": [
                    {
                        "index": c,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                    for c, text in enumerate(texts)
                ],
                "usage": usage,
            }
        )
    if body.get("echo"):
        heads = prompts(body)
        per = count // len(heads)
        texts = [heads[c // per] + text for c, text in enumerate(texts)]
    return orjson.dumps(
        {
            "id": f"cmpl-{settings.name}-{request_no}",
            "object": "text_completion",
            "created": now,
            "model": model,
            "system_fingerprint": settings.name,
            "choices": [
                {"index": c, "text": text, "logprobs": None, "finish_reason": "stop"}
                for c, text in enumerate(texts)
            ],
            "usage": usage,
        }
    )


def continuation(body: dict[str, Any]) -> tuple[int, int, str] | None:
    """Where a request that continues the simulator's own answer picks up: the choice whose
    answer it continues, the index of its next token and the rest of a token the text ends
    inside (``""``: none); ``None`` for an ordinary request. The simulator's answers are always
    ``tok0 tok1 …`` (``c1.tok0 c1.tok1 …`` for the second choice, …), so given a prefix of one,
    the continuation is exactly the rest.

    A chat request continues with ``continue_final_message`` (vLLM's extension: the final
    assistant message is continued, not answered); it raises :class:`ValueError` as vLLM does
    (with ``add_generation_prompt``, or without a final assistant message). A completion
    request continues, as a model would, when its prompt ends with a prefix of an answer
    (from its last ``tok0`` on, or ``c1.tok0``: ``tok0 tok1 …``)."""
    if "messages" not in body:
        prompt = body.get("prompt")
        start = prompt.rfind(_word(0)) if isinstance(prompt, str) else -1
        if start < 0:
            return None
        head = _CHOICE_BEFORE.search(str(prompt), 0, start)
        if head is not None:
            start = head.start()
        found = _after(str(prompt)[start:])
        return found[0] if not found[1] else None
    if not body.get("continue_final_message"):
        return None
    if body.get("add_generation_prompt", True):
        raise ValueError(
            "continue_final_message cannot be used at the same time as add_generation_prompt"
        )
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    if not isinstance(last, dict) or last.get("role") != "assistant":
        raise ValueError("continue_final_message needs a final assistant message")
    prefix = last.get("content")
    if not isinstance(prefix, str):
        raise ValueError("continue_final_message needs the final message's content as a string")
    return _after(prefix)[0]


#: a choice's mark just before a completion prompt's last ``tok0`` (``c1.``)
_CHOICE_BEFORE = re.compile(r"c(\d+)\.\Z")


def _after(prefix: str) -> tuple[tuple[int, int, str], str]:
    """Where the answer goes on after ``prefix`` (as :func:`continuation` returns it), and what
    of ``prefix`` is not the answer's (``""``: all of it is)."""
    mark = _CHOICE.match(prefix)
    c = int(mark.group(1)) if mark is not None else 0
    i = pos = 0
    while prefix.startswith(_word(i, c), pos):
        pos += len(_word(i, c))
        i += 1
    rest = prefix[pos:]
    word = _word(i, c)
    if rest and word.startswith(rest):  # it ends inside token i: its remainder comes first
        return (c, i + 1, word[len(rest) :]), ""
    return (c, i, ""), rest


def stream_words(settings: SimSettings, body: dict[str, Any], choice: int = 0) -> list[str]:
    """The token texts a streamed answer's choice ``choice`` sends: ``tok0 …``
    (``answer_tokens`` of them), or for a continuation the next ones of the answer it continues
    (``max_tokens`` more, else up to the natural end)."""
    start = continuation(body)
    n = answer_tokens(settings, body, stream=True)
    if start is None:
        return [_word(i, choice) for i in range(n)]
    c, i, head = start
    wanted = body.get("max_tokens") or body.get("max_completion_tokens")
    count = n if isinstance(wanted, int) and wanted > 0 else max(0, n - i)
    words = [head] if head else []
    words.extend(_word(j, c) for j in range(i, i + count))
    return words


def stream_chunk(
    kind: str, settings: SimSettings, *, model: str, request_no: int, now: int, i: int, last: bool,
    word: str | None = None, index: int = 0,
) -> bytes:  # fmt: skip
    """One server-sent event of a streamed answer (token ``i``, or the text ``word``, of choice
    ``index``; ``last`` adds finish_reason)."""
    finish = "stop" if last else None
    text = _word(i) if word is None else word
    if kind == "chat":
        delta: dict[str, Any] = {"content": text}
        if i == 0:
            delta["role"] = "assistant"
        data = {
            "id": f"chatcmpl-{settings.name}-{request_no}",
            "object": "chat.completion.chunk",
            "created": now,
            "model": model,
            "system_fingerprint": settings.name,
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }
    else:
        data = {
            "id": f"cmpl-{settings.name}-{request_no}",
            "object": "text_completion",
            "created": now,
            "model": model,
            "system_fingerprint": settings.name,
            "choices": [{"index": index, "text": text, "logprobs": None, "finish_reason": finish}],
        }
    return b"data: " + orjson.dumps(data) + b"\n\n"


def usage_chunk(kind: str, settings: SimSettings, *, model: str, request_no: int, now: int,
                body: dict[str, Any], completion: int) -> bytes:  # fmt: skip
    """The last event of a stream whose request set ``stream_options.include_usage``: no
    choices, the usage (the completion: the tokens this answer sent)."""
    prompt = prompt_tokens(body)
    prefix = "chatcmpl" if kind == "chat" else "cmpl"
    data: dict[str, Any] = {
        "id": f"{prefix}-{settings.name}-{request_no}",
        "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
        "created": now,
        "model": model,
        "system_fingerprint": settings.name,
        "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion},
    }  # fmt: skip
    return b"data: " + orjson.dumps(data) + b"\n\n"


def wants_usage(body: dict[str, Any]) -> bool:
    """Whether a streamed request asked for usage (``stream_options.include_usage``)."""
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


STREAM_DONE = b"data: [DONE]\n\n"


def embedding_vector(text: str, dim: int, seed: int) -> list[float]:
    """A deterministic unit vector for ``text`` (same text, same vector)."""
    out: list[float] = []
    counter = 0
    key = f"{seed}:{text}".encode()
    while len(out) < dim:
        digest = hashlib.blake2b(key + counter.to_bytes(4, "little"), digest_size=64).digest()
        out.extend(v / 2**31 - 1.0 for v in struct.unpack("<16I", digest))
        counter += 1
    vec = out[:dim]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def embeddings_body(settings: SimSettings, body: dict[str, Any]) -> bytes:
    """An answer to an embeddings request (``input`` a string or a list of strings)."""
    raw = body.get("input", "")
    inputs = [raw] if isinstance(raw, str) else [str(x) for x in raw]
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": embedding_vector(text, settings.embedding_dim, settings.seed),
        }
        for i, text in enumerate(inputs)
    ]
    tokens = sum(max(1, len(t.split())) for t in inputs)
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": body.get("model") or settings.models[0],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def models_body(settings: SimSettings, now: int) -> bytes:
    """The answer to ``GET /v1/models``."""
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": now, "owned_by": settings.name}
                for m in settings.models
            ],
        }
    )


def error_body(message: str, kind: str, code: str | None = None, param: str | None = None) -> bytes:
    """An OpenAI-style error body."""
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})
