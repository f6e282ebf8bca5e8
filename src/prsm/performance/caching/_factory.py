"""Build the caches the orchestrator's ``caching_strategy`` names.

========================  ==============================================================
``none``                  no cache
``memory``                exact cache, L1 only
``multi_tier``            exact cache, L1 + L2 (Redis or disk) + L3 (CAS or IPFS)
``semantic``              the semantic cache only
``multi_tier+semantic``   exact first, then semantic (:class:`~.base.ChainedResponseCache`)
========================  ==============================================================
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from ..clock import Clock
from ..errors import ConfigError, DependencyMissingError
from ..monitoring._registry import MetricsRegistry
from ._base import ChainedResponseCache, ResponseCache
from ._settings import CacheSettings
from .tiers._base import CacheTier

STRATEGIES = ("none", "memory", "multi_tier", "semantic", "multi_tier+semantic")

#: the function the semantic package provides to build its ResponseCache
SEMANTIC_FACTORY = "build_semantic_cache"


def build_tiers(settings: CacheSettings, *, clock: Clock | None = None) -> list[CacheTier]:
    """The L2 and L3 tiers ``settings`` asks for (nothing is opened until first use)."""
    from .tiers._cas import ContentAddressedTier, KuboBlobStore
    from .tiers._disk import DiskTier
    from .tiers._redis_tier import RedisTier

    tiers: list[CacheTier] = []
    data = settings.resolved_data_dir
    backend = settings.l2_backend
    if backend == "redis":
        assert settings.redis_url is not None
        tiers.append(
            RedisTier(
                settings.redis_url,
                cluster=settings.redis_cluster,
                namespace=settings.namespace,
                timeout=settings.tier_timeout,
                idle_timeout=settings.redis_idle_timeout,
                clock=clock,
            )
        )
    elif backend == "disk":
        tiers.append(
            DiskTier(
                data / f"{settings.namespace}-l2.sqlite3",
                max_bytes=settings.disk_max_bytes,
                clock=clock,
                timeout=settings.tier_timeout,
            )
        )
    if settings.l3 == "cas":
        tiers.append(ContentAddressedTier(data / f"{settings.namespace}-cas", clock=clock))
    elif settings.l3 == "ipfs":
        blobs = KuboBlobStore(settings.ipfs_api_url, timeout=max(settings.tier_timeout, 5.0))
        tiers.append(
            ContentAddressedTier(
                data / f"{settings.namespace}-ipfs-index", blobs=blobs, clock=clock
            )
        )
    return tiers


def _semantic(
    semantic_settings: object | None, metrics: MetricsRegistry | None, clock: Clock | None
) -> ResponseCache:
    name = "prsm.performance.caching.semantic"
    if importlib.util.find_spec(name) is None:
        raise ConfigError("caching_strategy", "the semantic cache is not part of this installation")
    try:
        module: Any = importlib.import_module(name)
    except DependencyMissingError:
        raise
    except ImportError as exc:
        raise DependencyMissingError(
            exc.name or "sentence-transformers", "embeddings", "The semantic cache"
        ) from exc
    factory = getattr(module, SEMANTIC_FACTORY, None)
    if factory is None:
        raise ConfigError(
            "caching_strategy",
            f"{name} has no {SEMANTIC_FACTORY}(); pass a semantic cache with semantic=",
        )
    cache: ResponseCache = factory(semantic_settings, metrics=metrics, clock=clock)
    return cache


def build_response_cache(
    strategy: str,
    settings: CacheSettings | None = None,
    *,
    metrics: MetricsRegistry | None = None,
    clock: Clock | None = None,
    semantic: ResponseCache | None = None,
    semantic_settings: object | None = None,
) -> ResponseCache | None:
    """The :class:`~.base.ResponseCache` for ``strategy`` (``None`` for ``"none"``).

    ``semantic`` is used as the semantic part when given; otherwise it is built by the
    semantic package's ``build_semantic_cache(semantic_settings, metrics=, clock=)``,
    imported only then (a missing embeddings extra raises
    :class:`~prsm.performance.errors.DependencyMissingError`).
    """
    if strategy not in STRATEGIES:
        raise ConfigError(
            "caching_strategy", f"must be one of {', '.join(STRATEGIES)}, got {strategy!r}"
        )
    if strategy == "none":
        return None
    settings = settings or CacheSettings()
    exact: ResponseCache | None = None
    if strategy in ("memory", "multi_tier", "multi_tier+semantic"):
        from ._multi_tier import MultiTierCache
        from ._response_cache import ExactResponseCache

        tiers: list[CacheTier] | None = [] if strategy == "memory" else None
        exact = ExactResponseCache(
            MultiTierCache(settings, tiers=tiers, metrics=metrics, clock=clock)
        )
    if strategy in ("memory", "multi_tier"):
        return exact
    sem = semantic if semantic is not None else _semantic(semantic_settings, metrics, clock)
    if exact is None:
        return sem
    return ChainedResponseCache([exact, sem])
