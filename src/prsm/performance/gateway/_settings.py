"""Settings of the gateway (config section ``gateway``): where it listens, limits, tenants,
who may use the admin API and which variables nodes may take their API keys from.

Imports only the standard library, :mod:`prsm.performance.errors` and the HTTP settings, so
``config.py`` can import it without a cycle. API keys are stored as SHA-256 hashes
(``prsm-perf hash-key KEY`` prints one); the gateway never holds a tenant's or an admin's key
in clear.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field

from ..caching.tiers._redis_idle import check_idle_timeout
from ..errors import ConfigError
from ..http._settings import HttpServerSettings

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOST_PATTERN = re.compile(r"^(\*|(\*\.)?[A-Za-z0-9._:\[\]-]+)$")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name to listen on, or a ``Host`` header's name) is on
    the loopback interface only: ``localhost``, 127.0.0.0/8 or ``::1``."""
    name = host.strip().lower().removeprefix("[").removesuffix("]")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def key_hashes(field: str, values: tuple[str, ...] | str) -> tuple[str, ...]:
    """``values`` as lower-case SHA-256 hex digests (``sha256:`` prefix allowed), or a
    :class:`ConfigError` naming ``field[i]`` for one that is not a digest."""
    if isinstance(values, str):
        values = (values,)
    keys = tuple(str(k).lower().removeprefix("sha256:") for k in values)
    for i, k in enumerate(keys):
        if not _HEX64.match(k):
            raise ConfigError(
                f"{field}[{i}]",
                "must be a SHA-256 hex digest (64 hex characters; "
                "`prsm-perf hash-key KEY` prints one), not a key in clear",
            )
    return keys


def hash_key(key: str) -> str:
    """The SHA-256 hex digest of an API key, as the config stores it."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _rate(name: str, value: float) -> None:
    if not value >= 0:
        raise ConfigError(name, f"must be >= 0 (0: unlimited), got {value!r}")


@dataclass(frozen=True, slots=True)
class TenantSettings:
    """One tenant: its API keys (SHA-256 hex digests) and its limits.

    ``requests_per_minute`` and ``tokens_per_minute`` are token-bucket rates (0: unlimited);
    ``request_burst`` and ``token_burst`` are the buckets' sizes (0: one minute's worth).
    Tokens are counted from each answer's ``usage`` and charged after it; a tenant whose
    token bucket is empty is refused until it refills. ``admin`` tenants may use ``/admin``.
    """

    name: str
    key_sha256: tuple[str, ...] = ()
    requests_per_minute: float = 0.0
    request_burst: float = 0.0
    tokens_per_minute: float = 0.0
    token_burst: float = 0.0
    admin: bool = False
    #: (rate per second, burst) of the request bucket, or ``None`` when unlimited; made once
    #: (every request reads both: a property costs about five times an attribute's read)
    request_bucket: tuple[float, float] | None = field(init=False, repr=False, compare=False)
    #: (rate per second, burst) of the token bucket, or ``None`` when unlimited
    token_bucket: tuple[float, float] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("name", f"must be a non-empty string, got {self.name!r}")
        keys = key_hashes("key_sha256", self.key_sha256)
        if not keys:
            raise ConfigError("key_sha256", f"tenant {self.name!r} needs at least one key hash")
        object.__setattr__(self, "key_sha256", keys)
        for name in ("requests_per_minute", "request_burst", "tokens_per_minute", "token_burst"):
            _rate(name, getattr(self, name))
        object.__setattr__(
            self, "request_bucket", _bucket(self.requests_per_minute, self.request_burst)
        )
        object.__setattr__(self, "token_bucket", _bucket(self.tokens_per_minute, self.token_burst))


def _bucket(per_minute: float, burst: float) -> tuple[float, float] | None:
    """(rate per second, burst) of a bucket of ``per_minute`` (``None``: unlimited); a burst of
    0 is one minute's worth."""
    if per_minute <= 0:
        return None
    return per_minute / 60.0, burst or per_minute


@dataclass(frozen=True, slots=True)
class NodeKeySettings:
    """An environment variable that nodes may take their API key from, and the hosts that
    key may be sent to.

    ``hosts`` are host names (``api.openai.com``, any port), ``host:port``,
    ``*.example.com`` for any host under a domain, or ``*`` for any host at all (say so only
    on purpose: the key then goes wherever an admin points a node). Nodes in the config file
    may always use the variable they name, towards their own host and port; a node added
    through the admin API may use only a variable listed here (or one a config-file node
    uses), towards a host allowed for it.
    """

    env: str
    hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.env, str) or not _ENV_NAME.match(self.env):
            raise ConfigError("env", f"must be an environment variable name, got {self.env!r}")
        if isinstance(self.hosts, str):
            object.__setattr__(self, "hosts", (self.hosts,))
        hosts = tuple(str(h).strip().lower() for h in self.hosts)
        if not hosts:
            raise ConfigError(
                "hosts", f"name the hosts the key in {self.env} may be sent to ('*': any host)"
            )
        for i, h in enumerate(hosts):
            if not _HOST_PATTERN.match(h):
                raise ConfigError(
                    f"hosts[{i}]", f"must be a host name, host:port, *.domain or *, got {h!r}"
                )
        object.__setattr__(self, "hosts", hosts)


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """How ``prsm-perf serve`` runs.

    With no ``tenants`` the gateway needs no API key on ``/v1`` (every request is tenant
    ``default``); with tenants, every ``/v1`` request needs a key of one of them
    (``Authorization: Bearer KEY``).

    The admin API (every path under ``/admin``) needs an admin key: one whose hash is in
    ``admin_key_sha256``, or a key of an ``admin`` tenant. With no admin key configured it
    answers only local callers of a gateway that listens on loopback (``host`` 127.0.0.1,
    ::1 or localhost; a ``Host``/``Origin`` naming another host is refused, which stops
    browser pages from reaching it); a gateway listening beyond loopback without an admin
    key refuses to start. ``node_keys`` lists the variables nodes added at run time may take
    their API keys from, and the hosts each key may go to (:class:`NodeKeySettings`).
    ``redis_url`` makes the rate limits shared by every gateway using the same Redis; a
    pooled connection to it idle for ``redis_idle_timeout`` seconds is closed.
    ``request_timeout``, when set, overrides the deadline of requests through the gateway;
    unset, the ``orchestrator`` section's ``default_timeout`` applies (that section holds every
    request-level timeout: deadline, retries, stream limits). ``upstream_timeout`` is the
    default per-call timeout of a node without its own. ``shutdown_grace`` is how long
    in-flight requests and streams may take to finish on shutdown. ``http`` holds the HTTP
    server's limits and timeouts (:class:`~prsm.performance.http.HttpServerSettings`).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_body_bytes: int = 1_048_576
    request_timeout: float | None = None
    upstream_timeout: float = 60.0
    connect_timeout: float = 5.0
    tenants: tuple[TenantSettings, ...] = ()
    redis_url: str | None = None
    ratelimit_prefix: str = "prsm:ratelimit:"
    redis_idle_timeout: float = 60.0
    shutdown_grace: float = 10.0
    access_log: bool = False
    http: HttpServerSettings = field(default_factory=HttpServerSettings)
    admin_key_sha256: tuple[str, ...] = ()
    node_keys: tuple[NodeKeySettings, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("port", f"must be within [0, 65535], got {self.port}")
        if self.workers < 1:
            raise ConfigError("workers", f"must be >= 1, got {self.workers}")
        if self.max_body_bytes < 1:
            raise ConfigError("max_body_bytes", f"must be >= 1, got {self.max_body_bytes}")
        if self.request_timeout is not None and not self.request_timeout > 0:
            raise ConfigError(
                "request_timeout", f"must be > 0 seconds (or unset), got {self.request_timeout!r}"
            )
        for name in ("upstream_timeout", "connect_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, f"must be > 0 seconds, got {getattr(self, name)!r}")
        if not self.shutdown_grace >= 0:
            raise ConfigError("shutdown_grace", f"must be >= 0, got {self.shutdown_grace!r}")
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ConfigError("redis_url", f"must be a redis:// URL, got {self.redis_url!r}")
        problem = check_idle_timeout(self.redis_idle_timeout)
        if problem is not None:
            raise ConfigError("redis_idle_timeout", problem)
        seen_names: set[str] = set()
        seen_keys: dict[str, str] = {}
        for i, tenant in enumerate(self.tenants):
            if tenant.name in seen_names:
                raise ConfigError(f"tenants[{i}].name", f"duplicate tenant {tenant.name!r}")
            seen_names.add(tenant.name)
            for k in tenant.key_sha256:
                if k in seen_keys:
                    raise ConfigError(
                        f"tenants[{i}].key_sha256",
                        f"a key hash is also given to tenant {seen_keys[k]!r}",
                    )
                seen_keys[k] = tenant.name
        object.__setattr__(
            self, "admin_key_sha256", key_hashes("admin_key_sha256", self.admin_key_sha256)
        )
        envs = [rule.env for rule in self.node_keys]
        for i, env in enumerate(envs):
            if env in envs[:i]:
                raise ConfigError(f"node_keys[{i}].env", f"{env} is listed twice")
        check_exposure(self, self.host)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.tenants)

    @property
    def admin_keys(self) -> frozenset[str]:
        """Every key hash that may use the admin API (``admin_key_sha256`` and the keys of
        ``admin`` tenants)."""
        return frozenset(self.admin_key_sha256).union(
            *(t.key_sha256 for t in self.tenants if t.admin)
        )


def check_exposure(settings: GatewaySettings, host: str) -> None:
    """Refuse a gateway that would listen on ``host``, beyond loopback, with no admin key
    (its admin API would be open to the network)."""
    if not is_loopback(host) and not settings.admin_keys:
        raise ConfigError(
            "gateway.admin_key_sha256",
            f"the gateway would listen on {host!r}, beyond loopback, with no admin key: anyone "
            "who reaches it could add nodes and read out their API keys. Set "
            "gateway.admin_key_sha256 to the hash of an admin key (`prsm-perf hash-key KEY`), "
            "or give a tenant `admin: true`, or listen on 127.0.0.1",
        )
