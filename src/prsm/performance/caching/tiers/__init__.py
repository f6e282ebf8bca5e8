"""The exact cache's tiers: memory (L1), Redis or disk (L2), content-addressed (L3)."""

from .base import CacheTier
from .cas import BlobStore, ContentAddressedTier, KuboBlobStore, LocalBlobStore
from .disk import DiskTier
from .memory import MemoryTier
from .redis_tier import RedisTier
from .testing import InMemoryTier

__all__ = [
    "BlobStore",
    "CacheTier",
    "ContentAddressedTier",
    "DiskTier",
    "InMemoryTier",
    "KuboBlobStore",
    "LocalBlobStore",
    "MemoryTier",
    "RedisTier",
]
