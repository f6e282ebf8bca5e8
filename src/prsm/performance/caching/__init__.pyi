from ._base import (
    CacheHit as CacheHit,
)
from ._base import (
    ChainedResponseCache as ChainedResponseCache,
)
from ._base import (
    ResponseCache as ResponseCache,
)
from ._codec import (
    CacheCodec as CacheCodec,
)
from ._codec import (
    CacheEntry as CacheEntry,
)
from ._factory import (
    build_response_cache as build_response_cache,
)
from ._factory import (
    build_tiers as build_tiers,
)
from ._keys import (
    RequestKeyer as RequestKeyer,
)
from ._keys import (
    request_key as request_key,
)
from ._keys import (
    tenant_prefix as tenant_prefix,
)
from ._multi_tier import MultiTierCache as MultiTierCache
from ._response_cache import (
    CachedStream as CachedStream,
)
from ._response_cache import (
    ExactResponseCache as ExactResponseCache,
)
from ._response_cache import (
    replayable as replayable,
)
from ._settings import CacheSettings as CacheSettings
from ._singleflight import SingleFlight as SingleFlight
from ._sse import (
    SSEAssembler as SSEAssembler,
)
from ._sse import (
    assemble_sse as assemble_sse,
)
from ._sse import (
    render_sse as render_sse,
)
from .tiers import (
    BlobStore as BlobStore,
)
from .tiers import (
    CacheTier as CacheTier,
)
from .tiers import (
    ContentAddressedTier as ContentAddressedTier,
)
from .tiers import (
    DiskTier as DiskTier,
)
from .tiers import (
    InMemoryTier as InMemoryTier,
)
from .tiers import (
    KuboBlobStore as KuboBlobStore,
)
from .tiers import (
    LocalBlobStore as LocalBlobStore,
)
from .tiers import (
    MemoryTier as MemoryTier,
)
from .tiers import (
    RedisTier as RedisTier,
)
