"""ExactResponseCache (cache modes, tenant isolation, streams) and the strategy factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from prsm.performance.caching import (
    CachedStream,
    CacheHit,
    CacheSettings,
    ChainedResponseCache,
    ExactResponseCache,
    InMemoryTier,
    MultiTierCache,
    ResponseCache,
    assemble_sse,
    build_response_cache,
    render_sse,
)
from prsm.performance.clock import ManualClock
from prsm.performance.errors import ConfigError
from prsm.performance.types import AIRequest, Response

COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris is the capital."},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
}


def _req(tenant: str = "t1", text: str = "capital of France?", **kw: Any) -> AIRequest:
    payload = {"model": "m", "messages": [{"role": "user", "content": text}]}
    return AIRequest(model="m", payload=payload, tenant=tenant, **kw)


def _exact(clock: ManualClock) -> tuple[ExactResponseCache, InMemoryTier]:
    l2 = InMemoryTier("l2", clock=clock)
    return ExactResponseCache(MultiTierCache(tiers=[l2], clock=clock)), l2


async def test_store_then_hit_with_tier(clock: ManualClock) -> None:
    cache, _ = _exact(clock)
    assert isinstance(cache, ResponseCache)
    assert await cache.lookup(_req()) is None
    await cache.store(_req(), Response(content=COMPLETION, tokens=8))
    hit = await cache.lookup(_req())
    assert isinstance(hit, CacheHit) and hit.tier == "l1" and hit.similarity is None
    assert hit.response.content == COMPLETION and hit.response.tokens == 8
    cache.cache.l1.clear_nowait()  # type: ignore[union-attr]
    hit = await cache.lookup(_req())
    assert hit is not None and hit.tier == "l2"


async def test_cache_modes(clock: ManualClock) -> None:
    cache, _ = _exact(clock)
    await cache.store(_req(cache_mode="no-store"), Response(content=COMPLETION))
    assert await cache.lookup(_req()) is None
    await cache.store(_req(cache_mode="no-cache"), Response(content=COMPLETION))
    assert await cache.lookup(_req(cache_mode="no-cache")) is None  # not read...
    assert await cache.lookup(_req()) is not None  # ...but stored


async def test_no_tenant_reads_another_tenants_entry(clock: ManualClock) -> None:
    cache, _ = _exact(clock)
    await cache.store(_req("alice"), Response(content=COMPLETION))
    assert await cache.lookup(_req("alice")) is not None
    assert await cache.lookup(_req("bob")) is None
    assert await cache.invalidate_tenant("alice") == 2  # L1 and L2
    assert await cache.lookup(_req("alice")) is None


async def test_failures_and_odd_answers_are_not_stored(clock: ManualClock) -> None:
    cache, l2 = _exact(clock)
    await cache.store(_req(), Response(content={"error": "x"}, status=500))
    assert await cache.lookup(_req()) is None
    await cache.store(_req(), Response(content=object()))
    assert cache.unstorable == 1 and await cache.lookup(_req()) is None
    odd = AIRequest(model="m", payload={"messages": [object()]})
    await cache.store(odd, Response(content=COMPLETION))
    assert await cache.lookup(odd) is None and cache.stats()["unkeyable"] == 2
    l2.down = True
    await cache.store(_req(), Response(content=COMPLETION))  # a tier failure never raises
    assert await cache.lookup(_req()) is not None
    assert cache.stats()["tiers"]["l2"]["write_errors"] == 1


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_streams_are_stored_whole_and_replayed(clock: ManualClock) -> None:
    cache, _ = _exact(clock)
    events = b"".join(render_sse(COMPLETION, chunk_chars=4))
    split = [events[i : i + 7] for i in range(0, len(events), 7)]  # arbitrary network splits
    passed = [c async for c in cache.record_stream(_req(stream=True), _chunks(split))]
    assert b"".join(passed) == events
    hit = await cache.lookup(_req())  # a non-streaming request is answered from it too
    assert hit is not None
    assert hit.response.content["choices"][0]["message"]["content"] == "Paris is the capital."
    replay = b"".join(cache.replay(hit))
    assert replay.endswith(b"data: [DONE]\n\n")
    assert assemble_sse([replay]) == hit.response.content


async def test_an_unfinished_stream_is_not_stored(clock: ManualClock) -> None:
    cache, _ = _exact(clock)
    events = list(render_sse(COMPLETION))[:-2]  # no finish, no [DONE]
    async for _ in cache.record_stream(_req(), _chunks(events)):
        pass
    assert await cache.lookup(_req()) is None
    with pytest.raises(TypeError):
        list(cache.replay(CacheHit(Response(content="text"), "l1")))


def test_sse_tool_calls_and_text_completions_round_trip() -> None:
    chat = {
        "id": "c",
        "object": "chat.completion",
        "created": 2,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
                "logprobs": None,
            }
        ],
    }
    assert assemble_sse(render_sse(chat)) == chat
    text = {
        "id": "t",
        "object": "text_completion",
        "created": 3,
        "model": "m",
        "choices": [
            {"index": 0, "text": "hello there", "finish_reason": "length", "logprobs": None}
        ],
    }
    assert assemble_sse(render_sse(text, chunk_chars=3)) == text
    assert assemble_sse([b'data: {"error": {"message": "x"}}\n\n', b"data: [DONE]\n\n"]) is None


async def test_factory_strategies(clock: ManualClock, tmp_path: Any) -> None:
    settings = CacheSettings(data_dir=str(tmp_path), l2="disk", l3="cas")
    assert build_response_cache("none", settings) is None
    memory = build_response_cache("memory", settings, clock=clock)
    assert isinstance(memory, ExactResponseCache) and memory.cache.tiers == ()
    multi = build_response_cache("multi_tier", settings, clock=clock)
    assert isinstance(multi, ExactResponseCache)
    assert [t.name for t in multi.cache.tiers] == ["l2", "l3"]
    await multi.store(_req(), Response(content=COMPLETION))
    await multi.aclose()
    reopened = build_response_cache("multi_tier", settings, clock=clock)
    assert isinstance(reopened, ExactResponseCache)
    hit = await reopened.lookup(_req())
    assert hit is not None and hit.tier == "l2"  # persisted on disk
    await reopened.aclose()
    sem, _ = _exact(clock)
    assert build_response_cache("semantic", settings, semantic=sem) is sem
    both = build_response_cache("multi_tier+semantic", settings, clock=clock, semantic=sem)
    assert isinstance(both, ChainedResponseCache) and both.caches[1] is sem
    await both.aclose()
    with pytest.raises(ConfigError, match="caching_strategy"):
        build_response_cache("lfu", settings)


async def test_cached_stream_records_then_replays(clock: ManualClock) -> None:
    cache, _ = _exact(clock)
    events = list(render_sse(COMPLETION, chunk_chars=5))
    opened = 0

    def open_stream() -> AsyncIterator[bytes]:
        nonlocal opened
        opened += 1
        return _chunks(events)

    first = CachedStream(cache, _req(stream=True, cache_mode="no-store"), open_stream)
    assert [c async for c in first] == events and first.tier is None
    assert await cache.lookup(_req()) is None  # no-store: nothing kept
    second = CachedStream(cache, _req(stream=True), open_stream)
    assert [c async for c in second] == events and second.tier is None
    third = CachedStream(cache, _req(stream=True), open_stream)
    replayed = [c async for c in third]
    assert opened == 2 and third.tier == "l1"
    assert assemble_sse(replayed) == COMPLETION
    fourth = CachedStream(cache, _req(stream=True, cache_mode="no-cache"), open_stream)
    await fourth.__anext__()
    await fourth.aclose()
    assert opened == 3 and fourth.tier is None


async def test_factory_builds_the_semantic_part_through_its_package(
    clock: ManualClock, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import prsm.performance.caching.semantic as semantic_pkg
    from prsm.performance.caching import _factory as factory

    built: list[tuple[Any, Any, Any]] = []
    sem, _ = _exact(clock)

    def fake_build(settings: Any, *, metrics: Any, clock: Any) -> ExactResponseCache:
        built.append((settings, metrics, clock))
        return sem

    monkeypatch.setattr(semantic_pkg, "build_semantic_cache", fake_build)
    marker = object()
    settings = CacheSettings(data_dir=str(tmp_path), l2="none", l3="none")
    both = build_response_cache(
        "multi_tier+semantic", settings, clock=clock, semantic_settings=marker
    )
    assert isinstance(both, ChainedResponseCache) and both.caches[1] is sem
    assert built == [(marker, None, clock)]
    monkeypatch.setattr(factory, "SEMANTIC_FACTORY", "no_such_factory")
    with pytest.raises(ConfigError, match="no_such_factory"):
        build_response_cache("semantic", settings)
