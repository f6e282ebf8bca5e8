"""The semantic cache in the request path: :class:`SemanticResponseCache` is a ResponseCache.

A request becomes (namespace, text):

* text: a completion's prompt, or a chat's non-system messages (one user message: its text;
  more: ``role: text`` lines). Requests with non-text parts, several prompts, or embedding
  requests are not cached semantically.
* namespace: tenant, model, and a hash of everything else that changes the answer: the
  system prompt(s), temperature, tools, response format, and every other body field but the
  messages/prompt and transport-only ones (``stream``, ``stream_options``, ``user``). No tenant
  ever sees another tenant's entries.

Requests whose temperature is above ``bypass_temperature_above`` (settings'
``assume_temperature`` when the body gives none; OpenAI's default is 1.0) skip the semantic
cache: their answers are meant to vary.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import orjson

from ...types import AIRequest, RequestKind, Response
from .._base import CacheHit
from ._cache import SemanticCache

log = logging.getLogger(__name__)

TRANSPORT_FIELDS = frozenset({"messages", "prompt", "stream", "stream_options", "user"})


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text":
                return None
            parts.append(str(part.get("text", "")))
        return "\n".join(parts)
    return None


def request_text(request: AIRequest) -> tuple[str, list[str]] | None:
    """``(text to embed, system prompts)``, or ``None`` when not semantically cacheable."""
    payload = request.payload
    if request.kind is RequestKind.COMPLETION:
        prompt = payload.get("prompt")
        return (prompt, []) if isinstance(prompt, str) and prompt.strip() else None
    if request.kind is not RequestKind.CHAT:
        return None
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    for msg in messages:
        if not isinstance(msg, Mapping):
            return None
        text = _text(msg.get("content"))
        if text is None:
            return None
        role = str(msg.get("role", "user"))
        if role in ("system", "developer"):
            system.append(text)
        else:
            turns.append((role, text))
    if not turns:
        return None
    if len(turns) == 1:
        return turns[0][1], system
    return "\n".join(f"{role}: {text}" for role, text in turns), system


def namespace_of(request: AIRequest, system: list[str]) -> str:
    """``tenant/model/hash`` of the answer-changing parameters."""
    params = {k: v for k, v in request.payload.items() if k not in TRANSPORT_FIELDS}
    params["__system__"] = system
    params["__kind__"] = request.kind.value
    digest = hashlib.sha256(orjson.dumps(params, option=orjson.OPT_SORT_KEYS, default=str))
    return f"{request.tenant}/{request.model}/{digest.hexdigest()[:16]}"


def answer_text(result: Any) -> Any:
    """The assistant's text in an OpenAI-shaped result (what adaptive feedback compares)."""
    content = result.get("content") if isinstance(result, Mapping) else result
    if isinstance(content, Mapping):
        choices = content.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
            first = choices[0]
            msg = first.get("message")
            if isinstance(msg, Mapping):
                return msg.get("content")
            return first.get("text")
    return content


def same_answer_text(a: Any, b: Any) -> bool:
    ta, tb = answer_text(a), answer_text(b)
    if isinstance(ta, str) and isinstance(tb, str):
        return " ".join(ta.lower().split()) == " ".join(tb.lower().split())
    return bool(ta == tb)


class SemanticResponseCache:
    """A :class:`~prsm.performance.caching.ResponseCache` over a :class:`SemanticCache`."""

    tier = "semantic"

    def __init__(self, cache: SemanticCache) -> None:
        self.cache = cache
        self.assume_temperature = cache.settings.assume_temperature
        self.bypassed = 0
        self.errors = 0

    def _key(self, request: AIRequest) -> tuple[str, str] | None:
        if not self.cache.settings.enabled:
            return None
        temperature = request.payload.get("temperature", self.assume_temperature)
        if not isinstance(temperature, (int, float)):
            temperature = self.assume_temperature
        if temperature > self.cache.settings.bypass_temperature_above:
            self.bypassed += 1
            return None
        found = request_text(request)
        if found is None:
            self.bypassed += 1
            return None
        text, system = found
        return namespace_of(request, system), text

    async def lookup(self, request: AIRequest) -> CacheHit | None:
        if request.cache_mode != "default":
            return None
        key = self._key(request)
        if key is None:
            return None
        namespace, text = key
        try:
            match = await self.cache.get_similar(text, namespace)
        except Exception as exc:  # a failing tier is a miss, counted and logged
            self.errors += 1
            log.warning("semantic lookup failed: %s", exc)
            return None
        if match is None:
            return None
        result = match.result
        response = Response(content=result["content"], tokens=int(result.get("tokens", 0)))
        return CacheHit(response, self.tier, match.similarity, match.original_query)

    async def store(self, request: AIRequest, response: Response) -> None:
        if request.cache_mode == "no-store" or response.status != 200:
            return
        key = self._key(request)
        if key is None:
            return
        namespace, text = key
        try:
            await self.cache.cache_result(
                text, {"content": response.content, "tokens": response.tokens}, namespace
            )
        except Exception as exc:  # a failing tier never fails the request; counted and logged
            self.errors += 1
            log.warning("semantic store failed: %s", exc)

    def stats(self) -> dict[str, Any]:
        return {"namespaces": self.cache.stats(), "bypassed": self.bypassed, "errors": self.errors}

    async def aclose(self) -> None:
        await self.cache.aclose()
