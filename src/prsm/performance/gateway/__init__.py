"""The OpenAI-compatible gateway (``prsm-perf serve``): settings, tenants, rate limits.

The ASGI app itself is :func:`prsm.performance.gateway.app.create_app`; this package's
``__init__`` imports only what ``config.py`` may import without a cycle.
"""

from .ratelimit import MemoryRateLimitStore, RateLimitStore, RedisRateLimitStore
from .settings import GatewaySettings, TenantSettings

__all__ = [
    "GatewaySettings",
    "MemoryRateLimitStore",
    "RateLimitStore",
    "RedisRateLimitStore",
    "TenantSettings",
]
