from ._base import CacheTier as CacheTier
from ._cas import (
    BlobStore as BlobStore,
    ContentAddressedTier as ContentAddressedTier,
    KuboBlobStore as KuboBlobStore,
    LocalBlobStore as LocalBlobStore,
)
from ._disk import DiskTier as DiskTier
from ._memory import MemoryTier as MemoryTier
from ._post import (
    IPFSCache as IPFSCache,
    MemoryCache as MemoryCache,
    RedisCache as RedisCache,
)
from ._redis_tier import RedisTier as RedisTier
from ._testing import InMemoryTier as InMemoryTier
