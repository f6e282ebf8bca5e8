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
