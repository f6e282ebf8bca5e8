"""Settings of the exact multi-tier cache (the ``cache`` section of the config).

Only the standard library and :mod:`..errors` are imported here, so ``config.py`` can import
this module without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .._paths import data_dir
from ..errors import ConfigError
from .tiers._redis_idle import check_idle_timeout

L2Backend = Literal["auto", "redis", "disk", "none"]
L3Backend = Literal["cas", "ipfs", "none"]

_L2 = ("auto", "redis", "disk", "none")
_L3 = ("cas", "ipfs", "none")


def default_data_dir() -> str:
    """The package's data directory (:func:`prsm.performance._paths.data_dir`)."""
    return str(data_dir())


def _positive(field: str, value: float | None, *, allow_none: bool = False) -> None:
    if value is None:
        if not allow_none:
            raise ConfigError(field, "must be set")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(field, f"must be a number > 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """How the exact cache is built.

    ``l1_*`` bound the in-process LRU (the post's default of 1,000 entries) by entries and
    bytes. ``default_ttl`` is the time to live of an entry stored without one (``None``:
    kept until evicted); ``l1_max_ttl``/``l2_max_ttl``/``l3_max_ttl`` cap it per tier.
    ``l2`` picks the shared tier: ``"redis"`` (needs ``redis_url``; ``redis_cluster`` for a
    Redis Cluster), ``"disk"`` (SQLite in WAL mode under ``data_dir``, survives restarts),
    ``"auto"`` (Redis when ``redis_url`` is set, else disk) or ``"none"``. ``l3`` picks the
    content-addressed tier: ``"cas"`` (a sha256 fan-out directory under ``data_dir``),
    ``"ipfs"`` (an IPFS node's Kubo HTTP API at ``ipfs_api_url``) or ``"none"``.
    ``early_refresh`` (a fraction of the TTL, e.g. ``0.1``) refreshes an entry that is hit
    in its last such fraction of life in the background; ``None`` turns that off. A tier
    that fails is skipped for ``failure_backoff`` seconds, doubling up to
    ``failure_backoff_max`` while it keeps failing. ``signing_key`` makes the integrity
    check of L2/L3 entries a keyed MAC (entries written by anyone without the key are
    rejected); without it the check is an unkeyed BLAKE2b digest. ``redis_idle_timeout``:
    a pooled Redis connection idle this many seconds is closed (the next use reconnects).
    """

    l1_max_entries: int = 1000
    l1_max_bytes: int = 64 * 1024 * 1024
    default_ttl: float | None = 3600.0
    l1_max_ttl: float | None = None
    l2_max_ttl: float | None = None
    l3_max_ttl: float | None = None
    l2: L2Backend = "auto"
    redis_url: str | None = None
    redis_cluster: bool = False
    redis_idle_timeout: float = 60.0
    data_dir: str = ""
    disk_max_bytes: int = 1024 * 1024 * 1024
    l3: L3Backend = "cas"
    ipfs_api_url: str = "http://127.0.0.1:5001"
    max_value_bytes: int = 8 * 1024 * 1024
    early_refresh: float | None = None
    namespace: str = "prsm"
    tier_timeout: float = 0.5
    failure_backoff: float = 1.0
    failure_backoff_max: float = 60.0
    signing_key: str | None = None

    def __post_init__(self) -> None:
        for name in ("l1_max_entries", "l1_max_bytes", "disk_max_bytes", "max_value_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(name, f"must be an integer > 0, got {value!r}")
        for name in ("default_ttl", "l1_max_ttl", "l2_max_ttl", "l3_max_ttl"):
            _positive(name, getattr(self, name), allow_none=True)
        for name in ("tier_timeout", "failure_backoff", "failure_backoff_max"):
            _positive(name, getattr(self, name))
        problem = check_idle_timeout(self.redis_idle_timeout)
        if problem is not None:
            raise ConfigError("redis_idle_timeout", problem)
        if self.failure_backoff_max < self.failure_backoff:
            raise ConfigError(
                "failure_backoff_max",
                f"must be >= failure_backoff ({self.failure_backoff}), "
                f"got {self.failure_backoff_max}",
            )
        if self.l2 not in _L2:
            raise ConfigError("l2", f"must be one of {list(_L2)}, got {self.l2!r}")
        if self.l3 not in _L3:
            raise ConfigError("l3", f"must be one of {list(_L3)}, got {self.l3!r}")
        if self.l2 == "redis" and not self.redis_url:
            raise ConfigError("redis_url", 'must be set when l2 is "redis"')
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ConfigError(
                "redis_url",
                f"must start with redis://, rediss:// or unix://, got {self.redis_url!r}",
            )
        if not self.ipfs_api_url.startswith(("http://", "https://")):
            raise ConfigError(
                "ipfs_api_url", f"must be an http(s):// URL, got {self.ipfs_api_url!r}"
            )
        if self.early_refresh is not None and not 0 < self.early_refresh < 1:
            raise ConfigError(
                "early_refresh", f"must be a fraction between 0 and 1, got {self.early_refresh!r}"
            )
        if not self.namespace or any(c in self.namespace for c in "*?[]{} \n"):
            raise ConfigError(
                "namespace",
                f"must be non-empty without spaces or glob characters: {self.namespace!r}",
            )
        if self.signing_key is not None and not 0 < len(self.signing_key.encode()) <= 64:
            raise ConfigError("signing_key", "must be 1 to 64 bytes long, or unset")

    @property
    def resolved_data_dir(self) -> Path:
        """``data_dir`` with ``~`` expanded, or the default data directory when empty."""
        return Path(self.data_dir or default_data_dir()).expanduser()

    @property
    def l2_backend(self) -> Literal["redis", "disk", "none"]:
        """The L2 backend ``l2`` resolves to (``"auto"``: Redis if ``redis_url``, else disk)."""
        if self.l2 == "auto":
            return "redis" if self.redis_url else "disk"
        return self.l2
