"""Semantic cache: embeddings + vector index + a verifier, namespaced, shared via Redis."""

from .cache import SemanticCache, SemanticMatch
from .factory import build_semantic_cache
from .index import AutoIndex, FlatIndex, HNSWIndex, VectorIndex
from .index_ivf import IVFIndex
from .response_cache import SemanticResponseCache
from .settings import SemanticSettings
from .store import EntryStore, MemoryStore, RedisStore, SQLiteStore
from .verifier import Verifier

__all__ = [
    "AutoIndex",
    "EntryStore",
    "FlatIndex",
    "HNSWIndex",
    "IVFIndex",
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "SemanticCache",
    "SemanticMatch",
    "SemanticResponseCache",
    "SemanticSettings",
    "VectorIndex",
    "Verifier",
    "build_semantic_cache",
]
