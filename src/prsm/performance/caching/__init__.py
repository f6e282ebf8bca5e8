"""Caching: the exact multi-tier cache and the semantic cache, behind ``ResponseCache``."""

from .base import CacheHit, ChainedResponseCache, ResponseCache
from .codec import CacheCodec, CacheEntry
from .factory import build_response_cache, build_tiers
from .keys import RequestKeyer, request_key, tenant_prefix
from .multi_tier import MultiTierCache
from .response_cache import CachedStream, ExactResponseCache, replayable
from .settings import CacheSettings
from .singleflight import SingleFlight
from .sse import SSEAssembler, assemble_sse, render_sse
from .tiers import (
    BlobStore,
    CacheTier,
    ContentAddressedTier,
    DiskTier,
    InMemoryTier,
    KuboBlobStore,
    LocalBlobStore,
    MemoryTier,
    RedisTier,
)

__all__ = [
    "BlobStore",
    "CacheCodec",
    "CacheEntry",
    "CacheHit",
    "CacheSettings",
    "CacheTier",
    "CachedStream",
    "ChainedResponseCache",
    "ContentAddressedTier",
    "DiskTier",
    "ExactResponseCache",
    "InMemoryTier",
    "KuboBlobStore",
    "LocalBlobStore",
    "MemoryTier",
    "MultiTierCache",
    "RedisTier",
    "RequestKeyer",
    "ResponseCache",
    "SSEAssembler",
    "SingleFlight",
    "assemble_sse",
    "build_response_cache",
    "build_tiers",
    "render_sse",
    "replayable",
    "request_key",
    "tenant_prefix",
]
