"""Caching: the exact multi-tier cache and the semantic cache, behind ``ResponseCache``."""

from .base import CacheHit, ChainedResponseCache, ResponseCache

__all__ = ["CacheHit", "ChainedResponseCache", "ResponseCache"]
