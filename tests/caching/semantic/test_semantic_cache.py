"""SemanticCache with the hashing embedder and the manual clock: no model, no sleeps."""

from __future__ import annotations

import numpy as np
import pytest

from prsm.performance.caching.semantic import SemanticCache, SemanticSettings, SQLiteStore
from prsm.performance.clock import ManualClock
from prsm.performance.embeddings._embedder import HashingEmbedder
from prsm.performance.errors import ConfigError

FRANCE = "What is the capital of France?"
FRANCE_2 = "what is the capital of france"
BREAD = "How do I bake sourdough bread at home?"


def make(clock: ManualClock, **kw: object) -> SemanticCache:
    settings = SemanticSettings(verifier=False, **kw)  # type: ignore[arg-type]
    return SemanticCache(settings, embedder=HashingEmbedder(), clock=clock)


async def test_hit_returns_result_similarity_and_original_query(clock: ManualClock) -> None:
    cache = make(clock)
    await cache.cache_result(FRANCE, "Paris")
    match = await cache.get_similar(FRANCE_2)
    assert match is not None
    assert match.result == "Paris"
    assert match.original_query == FRANCE
    assert match.similarity > 0.99
    assert await cache.get_similar(BREAD) is None
    stats = cache.stats()["default"]
    assert (stats["hits"], stats["misses"], stats["entries"]) == (1, 1, 1)


async def test_threshold_decides(clock: ManualClock) -> None:
    emb = HashingEmbedder()
    a, b = "What is the capital of France?", "Which city is the capital of France?"
    cos = float(emb.encode([a])[0] @ emb.encode([b])[0])
    low = make(clock, threshold=cos - 0.01)
    high = make(clock, threshold=cos + 0.01)
    for c in (low, high):
        await c.cache_result(a, "Paris")
    assert await low.get_similar(b) is not None
    assert await high.get_similar(b) is None


async def test_namespaces_never_cross(clock: ManualClock) -> None:
    cache = make(clock)
    await cache.cache_result(FRANCE, "Paris (tenant a)", "tenant-a/gpt")
    assert await cache.get_similar(FRANCE, "tenant-b/gpt") is None
    hit = await cache.get_similar(FRANCE, "tenant-a/gpt")
    assert hit is not None and hit.result == "Paris (tenant a)"
    await cache.cache_result(FRANCE, "Paris (tenant b)", "tenant-b/gpt")
    hit_b = await cache.get_similar(FRANCE, "tenant-b/gpt")
    assert hit_b is not None and hit_b.result == "Paris (tenant b)"


async def test_ttl_expires_entries(clock: ManualClock) -> None:
    cache = make(clock, ttl=60.0)
    await cache.cache_result(FRANCE, "Paris")
    clock.advance(59)
    assert await cache.get_similar(FRANCE) is not None
    clock.advance(2)
    assert await cache.get_similar(FRANCE) is None
    assert cache.stats()["default"]["expirations"] == 1
    assert len(cache) == 0


async def test_ivf_index_serves_the_cache_through_training_and_eviction(
    clock: ManualClock,
) -> None:
    pytest.importorskip("faiss")
    cache = make(clock, index="ivf", ivf_lists=4, ivf_probe=4, ivf_train_at=8, max_entries=20)
    questions = [f"question number {i} about topic {i * 7 % 13} and item {i}" for i in range(30)]
    for i, q in enumerate(questions):
        await cache.cache_result(q, i)
    index = cache._entries["default"].index
    assert index.wait_trained(30) and index.kind == "ivf" and len(index) == 20  # 10 evicted
    for i in (12, 25, 29):
        match = await cache.get_similar(questions[i])
        assert match is not None and match.result == i
    assert await cache.get_similar(questions[0]) is None  # evicted: gone from the lists too


async def test_size_bound_evicts_least_recently_used(clock: ManualClock) -> None:
    cache = make(clock, max_entries=2)
    await cache.cache_result("alpha beta gamma", 1)
    await cache.cache_result("delta epsilon zeta", 2)
    assert await cache.get_similar("alpha beta gamma") is not None  # alpha is now recent
    await cache.cache_result("eta theta iota", 3)
    assert await cache.get_similar("delta epsilon zeta") is None
    assert await cache.get_similar("alpha beta gamma") is not None
    assert cache.stats()["default"]["evictions"] == 1


async def test_error_bound_explores_then_serves_and_learns_from_feedback(
    clock: ManualClock,
) -> None:
    cache = make(clock, max_error_rate=0.2, error_confidence=0.8, explore_rate=0.0)
    await cache.cache_result(FRANCE, "Paris")
    # nothing learned yet: the cache explores (a miss) and learns from the stored answer
    assert await cache.get_similar(FRANCE_2) is None
    assert cache.stats()["default"]["explored"] == 1
    for _ in range(30):
        if await cache.get_similar(FRANCE_2) is None:
            await cache.cache_result(FRANCE_2, "Paris")
    served = await cache.get_similar(FRANCE_2)
    assert served is not None and served.result == "Paris"
    assert cache.thresholds()[""] <= served.score
    # the application says that hit was wrong: this entry is not served at that score again
    assert await cache.feedback(served, correct=False)
    assert await cache.get_similar(FRANCE_2) is None


async def test_error_bounds_per_namespace_prefix(clock: ManualClock) -> None:
    cache = make(clock, error_bounds={"acme/": 0.01})
    await cache.cache_result(FRANCE, "Paris", "acme/m")
    await cache.cache_result(FRANCE, "Paris", "other/m")
    assert await cache.get_similar(FRANCE_2, "acme/m") is None  # bounded: explores first
    assert await cache.get_similar(FRANCE_2, "other/m") is not None  # fixed threshold


async def test_get_similar_returns_the_posts_mapping(clock: ManualClock) -> None:
    cache = make(clock)
    await cache.cache_result(FRANCE, "Paris")
    hit = await cache.get_similar(FRANCE_2)
    assert hit is not None
    assert hit["result"] == "Paris" and hit["original_query"] == FRANCE
    assert hit["similarity_score"] == hit.similarity > 0.99
    assert dict(hit)["result"] == "Paris" and "similarity_score" in hit
    with pytest.raises(KeyError):
        hit["nope"]


async def test_long_prompts_hit_only_with_the_same_context(clock: ManualClock) -> None:
    cache = make(clock)
    doc = "\n\n".join(f"Section {i}. " + "Caches keep answers near their users. " * 20
                       for i in range(4))  # fmt: skip
    await cache.cache_result(doc + "\n\nSummarize the text above.", "summary")
    hit = await cache.get_similar(doc + "\n\nsummarize the text above")
    assert hit is not None and hit.result == "summary"
    assert hit.original_query == "Summarize the text above."
    other_doc = doc.replace("Section 2", "Section 9")
    assert await cache.get_similar(other_doc + "\n\nSummarize the text above.") is None
    assert await cache.get_similar(doc + "\n\nTranslate the text above.") is None
    assert await cache.invalidate("default") == 1


async def test_total_entries_bound_evicts_least_recently_used_namespaces(
    clock: ManualClock,
) -> None:
    cache = make(clock, max_total_entries=3)
    for i, ns in enumerate(("a", "b", "c")):
        await cache.cache_result(f"question {i} about rivers", i, ns)
    assert await cache.get_similar("question 0 about rivers", "a") is not None  # "a" is recent
    await cache.cache_result("question 3 about lakes", 3, "d")
    assert len(cache) == 3
    assert await cache.get_similar("question 1 about rivers", "b") is None  # evicted
    assert await cache.get_similar("question 0 about rivers", "a") is not None


async def test_sqlite_store_survives_restart(clock: ManualClock, tmp_path: object) -> None:
    settings = SemanticSettings(verifier=False, data_dir=str(tmp_path))
    first = SemanticCache(settings, embedder=HashingEmbedder(), clock=clock)
    await first.cache_result(FRANCE, {"answer": "Paris"}, "t/m")
    await first.cache_result(BREAD, {"answer": "flour"}, "t/m", ttl=10)
    await first.aclose()
    clock.advance(11)
    second = SemanticCache(settings, embedder=HashingEmbedder(), clock=clock)
    assert isinstance(second.store, SQLiteStore)
    hit = await second.get_similar(FRANCE_2, "t/m")
    assert hit is not None and hit.result == {"answer": "Paris"}
    assert await second.get_similar(BREAD, "t/m") is None  # expired while it was down
    assert len(second) == 1
    key = await second.cache_result("a new question about rivers", 1, "t/m")
    assert key > hit.key  # keys continue after the stored ones
    await second.aclose()


async def test_given_vector_skips_embedding(clock: ManualClock) -> None:
    emb = HashingEmbedder()
    cache = SemanticCache(SemanticSettings(verifier=False), embedder=emb, clock=clock)
    v = np.zeros(emb.dim, dtype=np.float32)
    v[3] = 2.0
    await cache.cache_result("x", 1, vector=v)
    hit = await cache.get_similar("y", vector=v)
    assert hit is not None and hit.similarity == pytest.approx(1.0)
    assert emb.calls == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("threshold", 1.5), ("top_k", 0), ("index", "annoy"), ("ttl", 0.0),
     ("max_error_rate", 1.0), ("redis_url", "http://x"), ("bypass_temperature_above", -1.0),
     ("error_bounds", {"acme/": 2.0}), ("explore_rate", 1.0), ("long_prompt_words", 0)],
)  # fmt: skip
def test_bad_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as err:
        SemanticSettings(**{field: value})  # type: ignore[arg-type]
    assert err.value.field.split(".")[0] == field
