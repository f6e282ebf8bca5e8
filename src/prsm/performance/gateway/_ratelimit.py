"""Per-tenant token buckets: the pure bucket math, an in-memory store and a Redis store.

:func:`admit` is the whole policy: given a bucket's state and ``now`` it returns whether the
request is admitted, the new state, and how long to wait otherwise. A bucket admits when it
holds at least ``need`` and then gives up ``cost`` (for requests need = cost = 1; for tokens
need = 1 and cost = 0 before the call, then :func:`admit` with need = -inf charges the
answer's tokens, possibly into debt down to ``-burst``). The Redis store runs the same math in
a Lua script, atomically, so several gateways share the buckets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from ..clock import Clock
from ..errors import ConfigError

log = logging.getLogger(__name__)


_EPSILON = 1e-3  # wall-clock seconds near 1.7e9 carry ~2e-7 s of rounding


@dataclass(frozen=True, slots=True)
class Bucket:
    """A bucket's state: tokens held and when that was computed (seconds, wall clock)."""

    tokens: float
    updated: float


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    state: Bucket
    retry_after: float


def admit(
    state: Bucket | None, now: float, *, rate: float, burst: float, need: float, cost: float
) -> Admission:
    """Refill ``state`` up to ``now`` at ``rate`` per second (capped at ``burst``); admit if it
    holds ``need`` and take ``cost`` (never below ``-burst``); else say when it will hold
    ``need``."""
    if not rate > 0 or not burst > 0:
        raise ConfigError("rate", f"rate and burst must be > 0, got {rate!r}, {burst!r}")
    if state is None:
        tokens, updated = burst, now
    else:
        tokens, updated = state.tokens, state.updated
        if now > updated:
            tokens = min(burst, tokens + (now - updated) * rate)
            updated = now
    if tokens >= need - _EPSILON:  # waiting exactly retry_after must be enough
        return Admission(True, Bucket(max(-burst, tokens - cost), updated), 0.0)
    return Admission(False, Bucket(tokens, updated), (need - tokens) / rate)


class RateLimitStore(Protocol):
    """Where buckets live."""

    async def admit(
        self, key: str, now: float, *, rate: float, burst: float, need: float, cost: float
    ) -> tuple[bool, float]:
        """(allowed, retry_after seconds) for the bucket ``key``."""
        ...

    async def aclose(self) -> None: ...


class MemoryRateLimitStore:
    """Buckets in this process (one gateway worker)."""

    def __init__(self) -> None:
        self.buckets: dict[str, Bucket] = {}

    async def admit(
        self, key: str, now: float, *, rate: float, burst: float, need: float, cost: float
    ) -> tuple[bool, float]:
        out = admit(self.buckets.get(key), now, rate=rate, burst=burst, need=need, cost=cost)
        self.buckets[key] = out.state
        return out.allowed, out.retry_after

    async def aclose(self) -> None:
        self.buckets.clear()


#: The same math as :func:`admit`, run atomically inside Redis.
LUA_ADMIT = """
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local need = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local s = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens = tonumber(s[1])
local updated = tonumber(s[2])
if tokens == nil or updated == nil then
  tokens = burst
  updated = now
end
if now > updated then
  tokens = math.min(burst, tokens + (now - updated) * rate)
  updated = now
end
local allowed = 0
local retry = 0
if tokens >= need - 1e-3 then
  tokens = math.max(-burst, tokens - cost)
  allowed = 1
else
  retry = (need - tokens) / rate
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'u', tostring(updated))
redis.call('PEXPIRE', KEYS[1], math.ceil(2 * burst / rate * 1000) + 1000)
return {allowed, tostring(retry)}
"""


class RedisRateLimitStore:
    """Buckets in Redis, shared by every gateway that uses the same ``redis_url``.

    If Redis cannot be reached the request is admitted (the limit fails open), the failure
    is counted in ``errors`` and logged: an outage of the limiter must not stop the service.
    A pooled connection idle for ``idle_timeout`` seconds is closed (as the Redis cache
    tier's: :class:`~prsm.performance.caching.tiers._redis_idle.IdleReaper`); the next call
    reconnects.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "prsm:ratelimit:",
        idle_timeout: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        from redis.asyncio import Redis

        from ..caching.tiers._redis_idle import IdleReaper, stamping_pool

        self.prefix = prefix
        pool = stamping_pool().from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.client: Any = Redis.from_pool(pool)
        self._script: Any = self.client.register_script(LUA_ADMIT)
        self.errors = 0
        self.calls = 0
        self.reaper = IdleReaper(
            self.client, idle_timeout=idle_timeout, uses=self._calls, clock=clock,
            name="ratelimit",
        )  # fmt: skip

    def _calls(self) -> int:
        return self.calls

    async def admit(
        self, key: str, now: float, *, rate: float, burst: float, need: float, cost: float
    ) -> tuple[bool, float]:
        from redis.exceptions import RedisError

        need_arg = repr(max(need, -1e300))  # Lua's tonumber does not read "-inf"
        if not self.calls:
            self.reaper.start()
        self.calls += 1
        try:
            allowed, retry = await self._script(
                keys=[self.prefix + key],
                args=[repr(now), repr(rate), repr(burst), need_arg, repr(cost)],
            )
        except (RedisError, OSError) as exc:
            self.errors += 1
            log.warning(
                "rate limit store unavailable, admitting (failure %d): %s", self.errors, exc
            )
            return True, 0.0
        return bool(allowed), float(retry)

    async def aclose(self) -> None:
        await self.reaper.aclose()
        await self.client.aclose()
