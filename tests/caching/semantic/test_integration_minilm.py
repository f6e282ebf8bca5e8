"""The real all-MiniLM-L6-v2 behind the cache, with the shipped verifier."""

from __future__ import annotations

import pytest

from prsm.performance.caching.semantic import SemanticCache, SemanticSettings
from prsm.performance.embeddings._embedder import SentenceTransformerEmbedder

pytestmark = pytest.mark.integration


async def test_paraphrase_hits_and_near_misses_do_not() -> None:
    pytest.importorskip("sentence_transformers")
    emb = SentenceTransformerEmbedder()
    vectors = await emb.embed(["How do I convert Celsius to Fahrenheit?"])
    assert vectors.shape == (1, 384)
    plain = SemanticCache(SemanticSettings(verifier=False, threshold=0.85), embedder=emb)
    ours = SemanticCache(SemanticSettings(verifier=True), embedder=emb)
    for cache in (plain, ours):
        await cache.cache_result("How do I convert Celsius to Fahrenheit?", "F = C * 9/5 + 32")
    swap = "How do I convert Fahrenheit to Celsius?"
    # plain cosine serves the wrong direction; the verifier refuses it
    assert await plain.get_similar(swap) is not None
    assert await ours.get_similar(swap) is None
    hit = await ours.get_similar("How can I convert Celsius into Fahrenheit?")
    assert hit is not None and hit.result == "F = C * 9/5 + 32"
    emb.close()


NEAR_MISSES = [
    ("How do I scroll up in a Word document?", "How do I scroll down in a Word document?"),
    ("How do I set up a local git repository?", "How do I set up a remote git repository?"),
    ("Is now a good time to buy gold?", "Is now a good time to sell gold?"),
    ("Why is my laptop overheating?", "Why is my tablet overheating?"),
    (
        "How do I convert kilograms to pounds?",
        "What's the formula for turning pounds into kilograms?",
    ),
    ("How long is the train from Paris to London?", "How long is the train from London to Paris?"),
]
PARAPHRASES = [
    ("How do I reset my router?", "What is the best way to reset my router?"),
    ("How do I convert kilograms to pounds?", "How can I convert kilograms into pounds?"),
    ("How long is the train from Paris to London?", "Train from Paris to London: how long?"),
]


async def test_a_default_cache_refuses_near_misses_and_serves_paraphrases() -> None:
    pytest.importorskip("sentence_transformers")
    cache = SemanticCache()  # as a new user would: every default
    for i, (a, b) in enumerate(NEAR_MISSES):
        await cache.cache_result(a, a, f"near-{i}")
        assert await cache.get_similar(b, f"near-{i}") is None, (a, b)
    for i, (a, b) in enumerate(PARAPHRASES):
        await cache.cache_result(a, a, f"para-{i}")
        hit = await cache.get_similar(b, f"para-{i}")
        assert hit is not None and hit["result"] == a, (a, b)
    await cache.aclose()
