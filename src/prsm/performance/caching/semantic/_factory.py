"""Build the semantic cache from settings (what ``caching_strategy="semantic"`` calls)."""

from __future__ import annotations

from ...clock import Clock
from ...embeddings._embedder import Embedder
from ...monitoring._registry import MetricsRegistry
from ._cache import SemanticCache
from ._response_cache import SemanticResponseCache, same_answer_text
from ._settings import SemanticSettings


def build_semantic_cache(
    settings: SemanticSettings | None = None,
    *,
    metrics: MetricsRegistry | None = None,
    clock: Clock | None = None,
    embedder: Embedder | None = None,
) -> SemanticResponseCache:
    """A :class:`SemanticResponseCache` on a :class:`SemanticCache` made from ``settings``."""
    cache = SemanticCache(
        settings or SemanticSettings(),
        embedder=embedder,
        metrics=metrics,
        clock=clock,
        judge=same_answer_text,
    )
    return SemanticResponseCache(cache, metrics=metrics)
