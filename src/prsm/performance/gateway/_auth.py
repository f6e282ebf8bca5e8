"""Who is calling (API key → tenant) and whether they are within their limits."""

from __future__ import annotations

import hashlib

from ..clock import Clock, SystemClock
from ..errors import AuthenticationError, RateLimitedError
from ._ratelimit import MemoryRateLimitStore, RateLimitStore
from ._settings import GatewaySettings, TenantSettings

#: the tenant of every request when no tenants are configured
DEFAULT_TENANT = TenantSettings(name="default", key_sha256=("0" * 64,), admin=True)


class Authenticator:
    """Maps ``Authorization: Bearer KEY`` (or ``x-api-key``) to a tenant by the key's hash."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.enabled = settings.auth_enabled
        self.by_hash = {k: t for t in settings.tenants for k in t.key_sha256}

    def tenant(self, authorization: bytes | None, api_key: bytes | None) -> TenantSettings:
        if not self.enabled:
            return DEFAULT_TENANT
        key = None
        if authorization is not None:
            scheme, _, value = authorization.partition(b" ")
            if scheme.lower() == b"bearer" and value.strip():
                key = value.strip()
        if key is None and api_key:
            key = api_key.strip()
        if not key:
            raise AuthenticationError("missing API key: send it as 'Authorization: Bearer KEY'")
        tenant = self.by_hash.get(hashlib.sha256(key).hexdigest())
        if tenant is None:
            raise AuthenticationError("invalid API key")
        return tenant


class TenantLimiter:
    """Applies a tenant's request-rate and token-rate buckets (see :mod:`.ratelimit`)."""

    def __init__(self, store: RateLimitStore | None = None, clock: Clock | None = None) -> None:
        self.store: RateLimitStore = store if store is not None else MemoryRateLimitStore()
        self.clock: Clock = clock if clock is not None else SystemClock()

    async def check(self, tenant: TenantSettings) -> None:
        """Raise :class:`RateLimitedError` if ``tenant`` may not start a request now."""
        tokens = tenant.token_bucket
        requests = tenant.request_bucket
        if tokens is None and requests is None:
            return
        now = self.clock.time()
        if tokens is not None:
            rate, burst = tokens
            ok, wait = await self.store.admit(
                f"{tenant.name}:tokens", now, rate=rate, burst=burst, need=1.0, cost=0.0
            )
            if not ok:
                raise RateLimitedError(tenant.name, "tokens per minute", wait)
        if requests is not None:
            rate, burst = requests
            ok, wait = await self.store.admit(
                f"{tenant.name}:requests", now, rate=rate, burst=burst, need=1.0, cost=1.0
            )
            if not ok:
                raise RateLimitedError(tenant.name, "requests per minute", wait)

    async def charge(self, tenant: TenantSettings, tokens: int) -> None:
        """Take the tokens an answer used from ``tenant``'s token bucket (may go into debt)."""
        bucket = tenant.token_bucket
        if bucket is None or tokens <= 0:
            return
        rate, burst = bucket
        await self.store.admit(
            f"{tenant.name}:tokens",
            self.clock.time(),
            rate=rate,
            burst=burst,
            need=-1e300,
            cost=float(tokens),
        )

    async def aclose(self) -> None:
        await self.store.aclose()
