"""SemanticResponseCache: requests → (namespace, text); bypass; tenant isolation; hits."""

from __future__ import annotations

from typing import Any

from prsm.performance.caching._base import ResponseCache
from prsm.performance.caching.semantic import (
    SemanticCache,
    SemanticResponseCache,
    SemanticSettings,
    build_semantic_cache,
)
from prsm.performance.caching.semantic._response_cache import namespace_of, request_text
from prsm.performance.clock import ManualClock
from prsm.performance.embeddings._embedder import HashingEmbedder
from prsm.performance.types import AIRequest, RequestKind, Response


def chat(text: str, *, tenant: str = "acme", system: str | None = None, **params: Any) -> AIRequest:
    messages: list[dict[str, Any]] = [{"role": "user", "content": text}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    payload = {"model": "m", "messages": messages, "temperature": 0.0, **params}
    return AIRequest(model="m", payload=payload, tenant=tenant)


def answer(text: str) -> Response:
    return Response(content={"choices": [{"message": {"role": "assistant", "content": text}}]})


def make(clock: ManualClock, **kw: Any) -> SemanticResponseCache:
    settings = SemanticSettings(verifier=False, **kw)
    return SemanticResponseCache(SemanticCache(settings, embedder=HashingEmbedder(), clock=clock))


async def test_is_a_response_cache_and_hits_with_similarity(clock: ManualClock) -> None:
    rc = make(clock)
    assert isinstance(rc, ResponseCache)
    await rc.store(chat("What is the capital of France?"), answer("Paris"))
    hit = await rc.lookup(chat("what is the capital of france"))
    assert hit is not None
    assert hit.tier == "semantic"
    assert hit.similarity is not None and hit.similarity > 0.99
    assert hit.original_query == "What is the capital of France?"
    assert hit.response.content["choices"][0]["message"]["content"] == "Paris"


async def test_tenants_models_and_parameters_are_separate(clock: ManualClock) -> None:
    rc = make(clock)
    await rc.store(chat("What is the capital of France?"), answer("Paris"))
    q = "What is the capital of France?"
    assert await rc.lookup(chat(q, tenant="other")) is None
    assert await rc.lookup(chat(q, system="Answer in French")) is None
    assert await rc.lookup(chat(q, tools=[{"type": "function", "function": {"name": "f"}}])) is None
    assert await rc.lookup(chat(q, temperature=0.3)) is None
    other_model = chat(q)
    other_model.model = "other-model"
    assert await rc.lookup(other_model) is None
    assert await rc.lookup(chat(q, stream=True, user="bob")) is not None  # transport only


async def test_high_temperature_bypasses(clock: ManualClock) -> None:
    rc = make(clock, bypass_temperature_above=0.5)
    await rc.store(chat("hello there", temperature=0.9), answer("hi"))
    assert rc.cache.stats() == {}
    assert await rc.lookup(chat("hello there", temperature=0.9)) is None
    no_temp = AIRequest(model="m", payload={"messages": [{"role": "user", "content": "x"}]})
    assert await rc.lookup(no_temp) is None  # OpenAI's default temperature 1.0 is assumed
    assert rc.bypassed == 3


async def test_cache_modes_and_errors_are_respected(clock: ManualClock) -> None:
    rc = make(clock)
    req = chat("What is the capital of France?")
    req.cache_mode = "no-store"
    await rc.store(req, answer("Paris"))
    assert rc.cache.stats() == {}
    await rc.store(chat("What is the capital of France?"), Response(content={}, status=500))
    assert rc.cache.stats() == {}


def test_request_text_normalises_messages() -> None:
    r = AIRequest(model="m", payload={"messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "capital of France?"},
    ]})  # fmt: skip
    assert request_text(r) == ("user: hi\nassistant: hello\nuser: capital of France?", ["be brief"])
    part = {"type": "image_url", "image_url": {"url": "x"}}
    img = AIRequest(model="m", payload={"messages": [{"role": "user", "content": [part]}]})
    assert request_text(img) is None
    comp = AIRequest(model="m", kind=RequestKind.COMPLETION, payload={"prompt": "2+2="})
    assert request_text(comp) == ("2+2=", [])
    emb = AIRequest(model="m", kind=RequestKind.EMBEDDING, payload={"input": "x"})
    assert request_text(emb) is None
    assert namespace_of(r, ["be brief"]).startswith("default/m/")


async def test_factory_builds_from_settings(clock: ManualClock) -> None:
    rc = build_semantic_cache(SemanticSettings(verifier=False), clock=clock,
                              embedder=HashingEmbedder())  # fmt: skip
    await rc.store(chat("a question about rivers"), answer("the Nile"))
    assert await rc.lookup(chat("a question about rivers")) is not None
    await rc.aclose()
