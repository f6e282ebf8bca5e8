"""Who is calling (API key → tenant; admin or not) and whether they are within their limits."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from ..clock import Clock, SystemClock
from ..errors import AuthenticationError, PermissionDeniedError, RateLimitedError
from ._ratelimit import MemoryRateLimitStore, RateLimitStore
from ._settings import GatewaySettings, TenantSettings, is_loopback

#: the tenant of every request when no tenants are configured (never an admin)
DEFAULT_TENANT = TenantSettings(name="default", key_sha256=("0" * 64,), admin=False)


def presented_key(authorization: bytes | None, api_key: bytes | None) -> bytes | None:
    """The key a request presents: ``Authorization: Bearer KEY``, else ``x-api-key``."""
    key = None
    if authorization is not None:
        scheme, _, value = authorization.partition(b" ")
        if scheme.lower() == b"bearer" and value.strip():
            key = value.strip()
    if key is None and api_key:
        key = api_key.strip()
    return key or None


def _host_name(value: bytes) -> str:
    """The host of a ``Host`` header (``name[:port]``, ``[v6]:port``) or an ``Origin``; ``""``
    when it cannot be read (a malformed value is not loopback, so it is refused)."""
    text = value.decode("latin-1").strip()
    try:
        return urlsplit(text if "://" in text else f"//{text}").hostname or ""
    except ValueError:  # e.g. an unclosed "[" in an IPv6 literal
        return ""


class Authenticator:
    """Maps ``Authorization: Bearer KEY`` (or ``x-api-key``) to a tenant by the key's hash,
    and decides who may use the admin API (see :class:`GatewaySettings`)."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.enabled = settings.auth_enabled
        self.by_hash = {k: t for t in settings.tenants for k in t.key_sha256}
        self.admin_keys = settings.admin_keys
        self.local_admin = not self.admin_keys and is_loopback(settings.host)

    def tenant(self, authorization: bytes | None, api_key: bytes | None) -> TenantSettings:
        if not self.enabled:
            return DEFAULT_TENANT
        key = presented_key(authorization, api_key)
        if key is None:
            raise AuthenticationError("missing API key: send it as 'Authorization: Bearer KEY'")
        tenant = self.by_hash.get(hashlib.sha256(key).hexdigest())
        if tenant is None:
            raise AuthenticationError("invalid API key")
        return tenant

    def admin(
        self,
        authorization: bytes | None,
        api_key: bytes | None,
        *,
        host: bytes | None = None,
        origin: bytes | None = None,
        client: str | None = None,
    ) -> str:
        """Who is using the admin API (``"admin key"``, ``"tenant NAME"`` or ``"local"``), or
        :class:`AuthenticationError` / :class:`PermissionDeniedError`.

        With admin keys configured, the request must present one. With none (a gateway on
        loopback), only a local caller may: the client address (when the server tells it)
        and the ``Host`` and ``Origin`` headers (when sent) must all be loopback, so a web
        page cannot reach the admin API through the user's browser (DNS rebinding, CSRF).
        """
        key = presented_key(authorization, api_key)
        if self.admin_keys:
            if key is None:
                raise AuthenticationError(
                    "the admin API needs an admin key: send it as 'Authorization: Bearer KEY'"
                )
            digest = hashlib.sha256(key).hexdigest()
            if digest in self.admin_keys:
                tenant = self.by_hash.get(digest)
                return f"tenant {tenant.name}" if tenant is not None else "admin key"
            tenant = self.by_hash.get(digest)
            if tenant is not None:
                raise PermissionDeniedError(f"tenant {tenant.name!r} may not use the admin API")
            raise AuthenticationError("invalid admin key")
        if not self.local_admin:
            raise PermissionDeniedError(
                "the admin API is off: no admin key is configured (gateway.admin_key_sha256)"
            )
        for what, value in (("Host", host), ("Origin", origin)):
            if value is not None and not is_loopback(_host_name(value)):
                raise PermissionDeniedError(
                    f"the admin API without an admin key answers local callers only; "
                    f"{what} names another host"
                )
        if client is not None and not is_loopback(client):
            raise PermissionDeniedError(
                "the admin API without an admin key answers local callers only"
            )
        return "local"


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
