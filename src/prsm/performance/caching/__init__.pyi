from ._base import (
    CacheHit as CacheHit,
    ChainedResponseCache as ChainedResponseCache,
    ResponseCache as ResponseCache,
)
from ._codec import (
    CacheCodec as CacheCodec,
    CacheEntry as CacheEntry,
)
from ._factory import (
    build_response_cache as build_response_cache,
    build_tiers as build_tiers,
)
from ._keys import (
    RequestKeyer as RequestKeyer,
    request_key as request_key,
    tenant_prefix as tenant_prefix,
)
from ._multi_tier import MultiTierCache as MultiTierCache
from ._response_cache import (
    CachedStream as CachedStream,
    ExactResponseCache as ExactResponseCache,
    replayable as replayable,
)
from ._settings import CacheSettings as CacheSettings
from ._singleflight import SingleFlight as SingleFlight
from ._sse import (
    SSEAssembler as SSEAssembler,
    assemble_sse as assemble_sse,
    render_sse as render_sse,
)
from .tiers import (
    BlobStore as BlobStore,
    CacheTier as CacheTier,
    ContentAddressedTier as ContentAddressedTier,
    DiskTier as DiskTier,
    InMemoryTier as InMemoryTier,
    IPFSCache as IPFSCache,
    KuboBlobStore as KuboBlobStore,
    LocalBlobStore as LocalBlobStore,
    MemoryCache as MemoryCache,
    MemoryTier as MemoryTier,
    RedisCache as RedisCache,
    RedisTier as RedisTier,
)
