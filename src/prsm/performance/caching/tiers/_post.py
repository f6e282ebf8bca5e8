"""The source post's tier names: ``MemoryCache``, ``RedisCache`` and ``IPFSCache``.

Each is one of our tiers with the post's defaults, so the post's code runs as written::

    cache = MultiTierCache(l1=MemoryCache(maxsize=1000), l2=RedisCache(), l3=IPFSCache())
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..._paths import data_dir
from ...clock import Clock
from ._cas import ContentAddressedTier, KuboBlobStore
from ._memory import MemoryTier
from ._redis_tier import RedisTier


class MemoryCache(MemoryTier[Any]):
    """The post's L1: an in-process LRU of ``maxsize`` entries (1,000), bounded in bytes too."""

    def __init__(
        self,
        maxsize: int = 1000,
        max_bytes: int = 64 * 1024 * 1024,
        *,
        clock: Clock | None = None,
        name: str = "l1",
    ) -> None:
        super().__init__(maxsize, max_bytes, clock=clock, name=name)


class RedisCache(RedisTier):
    """The post's L2: Redis at ``url`` (a local server on the default port unless told)."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", **kwargs: Any) -> None:
        super().__init__(url, **kwargs)


class IPFSCache(ContentAddressedTier):
    """The post's L3: values in an IPFS node through its Kubo RPC API at ``api_url``, with
    the key → CID index in ``index_dir`` (default: ``ipfs-index`` in the data directory)."""

    def __init__(
        self,
        api_url: str = "http://127.0.0.1:5001",
        index_dir: str | Path | None = None,
        *,
        clock: Clock | None = None,
        timeout: float = 5.0,
    ) -> None:
        root = Path(index_dir) if index_dir is not None else data_dir() / "ipfs-index"
        blobs = KuboBlobStore(api_url, timeout=timeout)
        super().__init__(root, blobs=blobs, clock=clock, timeout=timeout)
