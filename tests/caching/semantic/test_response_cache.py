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
from prsm.performance.caching.semantic._response_cache import namespace_of, request_key
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
    assert rc.bypassed == {"temperature": 3}


async def test_cache_modes_and_errors_are_respected(clock: ManualClock) -> None:
    rc = make(clock)
    req = chat("What is the capital of France?")
    req.cache_mode = "no-store"
    await rc.store(req, answer("Paris"))
    assert rc.cache.stats() == {}
    await rc.store(chat("What is the capital of France?"), Response(content={}, status=500))
    assert rc.cache.stats() == {}


def test_request_key_compares_the_last_user_turn_and_hashes_the_rest() -> None:
    r = AIRequest(model="m", payload={"messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "capital of France?"},
    ]})  # fmt: skip
    reason, context, text = request_key(r)
    assert (reason, text) == ("", "capital of France?")
    assert [m["role"] for m in context] == ["system", "user", "assistant"]
    part = {"type": "image_url", "image_url": {"url": "x"}}
    img = AIRequest(model="m", payload={"messages": [{"role": "user", "content": [part]}]})
    assert request_key(img)[0] == "non_text"
    comp = AIRequest(model="m", kind=RequestKind.COMPLETION, payload={"prompt": "2+2="})
    assert request_key(comp) == ("", [], "2+2=")
    several = AIRequest(model="m", kind=RequestKind.COMPLETION, payload={"prompt": ["a", "b"]})
    assert request_key(several)[0] == "multiple_prompts"
    emb = AIRequest(model="m", kind=RequestKind.EMBEDDING, payload={"input": "x"})
    assert request_key(emb)[0] == "kind"
    assert namespace_of(r, context).startswith("default/m/")


def turns(*texts: str, system: str = "be brief") -> AIRequest:
    messages = [{"role": "system", "content": system}]
    for i, t in enumerate(texts):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": t})
    return AIRequest(model="m", payload={"model": "m", "messages": messages, "temperature": 0})


async def test_a_hit_needs_the_same_conversation_so_far(clock: ManualClock) -> None:
    rc = make(clock)
    await rc.store(turns("I live in Lyon.", "Noted.", "What is the capital of France?"),
                   answer("Paris"))  # fmt: skip
    same = turns("I live in Lyon.", "Noted.", "what is the capital of france")
    assert await rc.lookup(same) is not None
    assert (
        await rc.lookup(turns("I live in Bonn.", "Noted.", "What is the capital of France?"))
        is None
    )
    assert await rc.lookup(turns("What is the capital of France?")) is None
    assert await rc.lookup(turns("I live in Lyon.", "Noted.", "What is the capital of France?",
                                 system="answer in German")) is None  # fmt: skip


async def test_tool_calls_and_results_bypass_unless_configured(clock: ManualClock) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
    msgs: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    req = AIRequest(model="m", payload={"messages": msgs, "temperature": 0})
    rc = make(clock)
    await rc.store(req, answer("rain"))
    assert await rc.lookup(req) is None
    assert rc.bypassed == {"tool_call": 2}
    prefill = AIRequest(model="m", payload={"temperature": 0, "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hel"}]})  # fmt: skip
    assert await rc.lookup(prefill) is None and rc.bypassed["not_user_turn"] == 1
    tools_on = make(clock, tool_requests=True)
    await tools_on.store(req, answer("rain"))
    assert await tools_on.lookup(req) is not None


async def test_feedback_on_a_served_hit_reaches_the_bound(clock: ManualClock) -> None:
    rc = make(clock, max_error_rate=0.3, explore_rate=0.0)
    first = chat("What is the capital of France?")
    await rc.store(first, answer("Paris"))
    again = chat("what is the capital of france")
    for _ in range(30):  # cold start: explored lookups teach the bound
        if await rc.lookup(again) is None:
            await rc.store(again, answer("Paris"))
    served = chat("what is the capital of france")
    assert await rc.lookup(served) is not None
    assert await rc.feedback(served.id, "someone-else", correct=False) is None
    assert await rc.feedback("unknown-id", "acme", correct=False) is None
    assert await rc.feedback(served.id, "acme", correct=False) is True
    assert await rc.lookup(chat("what is the capital of france")) is None


async def test_factory_builds_from_settings(clock: ManualClock) -> None:
    rc = build_semantic_cache(SemanticSettings(verifier=False), clock=clock,
                              embedder=HashingEmbedder())  # fmt: skip
    await rc.store(chat("a question about rivers"), answer("the Nile"))
    assert await rc.lookup(chat("a question about rivers")) is not None
    await rc.aclose()
