"""The semantic cache in the request path: :class:`SemanticResponseCache` is a ResponseCache.

A request becomes (namespace, text), conversation-aware:

* text: a completion's prompt, or a chat's **last user turn** — the only part compared.
* namespace: tenant, model, and a hash of everything else that can change the answer: the
  system prompt(s), the tools and tool choice, temperature, response format and every other
  body field but transport-only ones (``stream``, ``stream_options``, ``user``), **and every
  earlier turn of the conversation**. So a semantic hit needs the same system prompt, the same
  tools and the same conversation so far, byte for byte; no tenant ever sees another's entries.

Requests bypass the semantic cache (each reason counted, ``stats()["bypassed"]`` and
``prsm_semantic_bypass_total{reason}``) when: the temperature is above
``bypass_temperature_above`` (``temperature``), the conversation carries tool calls or tool
results and ``tool_requests`` is off (``tool_call``, ``tool_result``), the last message is not
the user's (``not_user_turn``), a message has non-text parts (``non_text``), the body is not a
chat or a single-prompt completion (``kind``, ``multiple_prompts``), or there is no text
(``empty``).

Every served hit is remembered by its request id (the gateway's ``x-request-id``), so the
application can say it was wrong: :meth:`SemanticResponseCache.feedback`, which
``POST /v1/cache/feedback`` calls.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

from ...monitoring._registry import MetricsRegistry
from ...types import AIRequest, RequestKind, Response
from .._base import CacheHit
from ._cache import SemanticCache
from ._match import SemanticMatch

log = logging.getLogger(__name__)

TRANSPORT_FIELDS = frozenset({"messages", "prompt", "stream", "stream_options", "user"})
TOOL_ROLES = frozenset({"tool", "function"})
#: served hits remembered for feedback
SERVED_LIMIT = 100_000


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


def request_key(request: AIRequest, *, tool_requests: bool = False) -> tuple[str, Any, str]:
    """``("", context, text)`` of a cacheable request, or ``(reason, None, "")`` of one that
    bypasses the semantic cache. ``context`` is what must match exactly: the system prompts
    and the earlier turns."""
    payload = request.payload
    if request.kind is RequestKind.COMPLETION:
        prompt = payload.get("prompt")
        if isinstance(prompt, list):
            return "multiple_prompts", None, ""
        if not isinstance(prompt, str) or not prompt.strip():
            return "empty", None, ""
        return "", [], prompt
    if request.kind is not RequestKind.CHAT:
        return "kind", None, ""
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        return "empty", None, ""
    context: list[Any] = []
    for msg in messages:
        if not isinstance(msg, Mapping):
            return "empty", None, ""
        role = str(msg.get("role", "user"))
        if not tool_requests:
            if role in TOOL_ROLES:
                return "tool_result", None, ""
            if msg.get("tool_calls") or msg.get("function_call"):
                return "tool_call", None, ""
        text = _text(msg.get("content"))
        if text is None and not (tool_requests and msg.get("content") is None):
            return "non_text", None, ""
        context.append(dict(msg))
    last = context.pop()
    if str(last.get("role", "user")) != "user":
        return "not_user_turn", None, ""
    text = _text(last.get("content")) or ""
    if not text.strip():
        return "empty", None, ""
    return "", context, text


def namespace_of(request: AIRequest, context: Any) -> str:
    """``tenant/model/hash`` of the answer-changing parameters (system prompts and tools
    among them) and of the conversation before the last turn."""
    params = {k: v for k, v in request.payload.items() if k not in TRANSPORT_FIELDS}
    params["__context__"] = context
    params["__kind__"] = request.kind.value
    digest = hashlib.sha256(orjson.dumps(params, option=orjson.OPT_SORT_KEYS, default=str))
    return f"{request.tenant}/{request.model}/{digest.hexdigest()[:16]}"


def answer_text(result: Any) -> Any:
    """The assistant's text in an OpenAI-shaped result (what explored lookups compare)."""
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

    def __init__(self, cache: SemanticCache, *, metrics: MetricsRegistry | None = None) -> None:
        self.cache = cache
        self.assume_temperature = cache.settings.assume_temperature
        self.bypassed: Counter[str] = Counter()
        self.errors = 0
        self._served: OrderedDict[str, tuple[str, SemanticMatch]] = OrderedDict()
        m = metrics or MetricsRegistry()
        self._m_bypass = m.counter(
            "semantic_bypass", "Requests that skipped the semantic cache, by reason", ["reason"]
        )

    def _bypass(self, reason: str) -> None:
        self.bypassed[reason] += 1
        self._m_bypass.labels(reason).inc()

    def _key(self, request: AIRequest) -> tuple[str, str] | None:
        settings = self.cache.settings
        if not settings.enabled:
            return None
        temperature = request.payload.get("temperature", self.assume_temperature)
        if not isinstance(temperature, (int, float)):
            temperature = self.assume_temperature
        if temperature > settings.bypass_temperature_above:
            self._bypass("temperature")
            return None
        reason, context, text = request_key(request, tool_requests=settings.tool_requests)
        if reason:
            self._bypass(reason)
            return None
        return namespace_of(request, context), text

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
        self._served[request.id] = (request.tenant, match)
        if len(self._served) > SERVED_LIMIT:
            self._served.popitem(last=False)
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

    async def feedback(self, request_id: str, tenant: str, *, correct: bool) -> bool | None:
        """The application's verdict on the hit served to request ``request_id``: ``None``
        if no hit of ``tenant``'s has that id (unknown, too old, or another tenant's), else
        whether an error bound learned from it."""
        served = self._served.get(request_id)
        if served is None or served[0] != tenant:
            return None
        return await self.cache.feedback(served[1], correct=correct)

    def stats(self) -> dict[str, Any]:
        return {
            "namespaces": self.cache.stats(),
            "bypassed": dict(self.bypassed),
            "errors": self.errors,
        }

    async def aclose(self) -> None:
        await self.cache.aclose()
