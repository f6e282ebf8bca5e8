"""Token-bucket math (pure, ManualClock) and the tenant limiter over the in-memory store."""

from __future__ import annotations

import asyncio

import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.errors import ConfigError, RateLimitedError
from prsm.performance.gateway._auth import TenantLimiter
from prsm.performance.gateway._ratelimit import (
    Bucket,
    MemoryRateLimitStore,
    RedisRateLimitStore,
    admit,
)
from prsm.performance.gateway._settings import GatewaySettings, TenantSettings, hash_key
from tests.conftest import RedisServer, free_port


def test_a_new_bucket_starts_full_and_admits_its_burst() -> None:
    state = None
    for _ in range(3):
        out = admit(state, 100.0, rate=1.0, burst=3.0, need=1.0, cost=1.0)
        assert out.allowed
        state = out.state
    refused = admit(state, 100.0, rate=1.0, burst=3.0, need=1.0, cost=1.0)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(1.0)


def test_refill_is_proportional_to_elapsed_time_and_capped_at_burst() -> None:
    empty = Bucket(0.0, 10.0)
    half = admit(empty, 10.5, rate=2.0, burst=5.0, need=1.0, cost=0.0)
    assert half.allowed and half.state.tokens == pytest.approx(1.0)
    full = admit(empty, 1000.0, rate=2.0, burst=5.0, need=1.0, cost=0.0)
    assert full.state.tokens == pytest.approx(5.0)


def test_retry_after_is_time_until_the_need_is_met() -> None:
    out = admit(Bucket(0.25, 0.0), 0.0, rate=0.5, burst=2.0, need=1.0, cost=1.0)
    assert not out.allowed
    assert out.retry_after == pytest.approx(1.5)


def test_debt_is_bounded_by_minus_burst() -> None:
    out = admit(Bucket(1.0, 0.0), 0.0, rate=1.0, burst=10.0, need=-1e300, cost=500.0)
    assert out.allowed and out.state.tokens == -10.0


def test_clock_going_backwards_does_not_drain_or_fill() -> None:
    out = admit(Bucket(1.0, 50.0), 40.0, rate=1.0, burst=5.0, need=1.0, cost=1.0)
    assert out.allowed and out.state == Bucket(0.0, 50.0)


def test_bad_rate_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        admit(None, 0.0, rate=0.0, burst=1.0, need=1.0, cost=1.0)


def _tenant(**kw: float) -> TenantSettings:
    return TenantSettings(name="t", key_sha256=(hash_key("k"),), **kw)


async def test_request_limit_refuses_with_retry_after_then_refills(clock: ManualClock) -> None:
    limiter = TenantLimiter(MemoryRateLimitStore(), clock)
    tenant = _tenant(requests_per_minute=60, request_burst=2)
    await limiter.check(tenant)
    await limiter.check(tenant)
    with pytest.raises(RateLimitedError) as err:
        await limiter.check(tenant)
    assert err.value.retry_after == pytest.approx(1.0)
    assert err.value.tenant == "t"
    clock.advance(1.0)
    await limiter.check(tenant)


async def test_token_limit_charges_usage_and_refuses_while_in_debt(clock: ManualClock) -> None:
    limiter = TenantLimiter(MemoryRateLimitStore(), clock)
    tenant = _tenant(tokens_per_minute=600, token_burst=100)  # 10 tokens/s
    await limiter.check(tenant)
    await limiter.charge(tenant, 150)  # 100 - 150 = -50
    with pytest.raises(RateLimitedError) as err:
        await limiter.check(tenant)
    assert err.value.retry_after == pytest.approx(5.1)  # until it holds 1 token again
    clock.advance(5.1)
    await limiter.check(tenant)


async def test_unlimited_tenant_is_never_refused(clock: ManualClock) -> None:
    limiter = TenantLimiter(MemoryRateLimitStore(), clock)
    tenant = _tenant()
    for _ in range(1000):
        await limiter.check(tenant)
    await limiter.charge(tenant, 10**9)
    await limiter.check(tenant)


async def test_tenants_have_separate_buckets(clock: ManualClock) -> None:
    limiter = TenantLimiter(MemoryRateLimitStore(), clock)
    a = TenantSettings(
        name="a", key_sha256=(hash_key("a"),), requests_per_minute=1, request_burst=1
    )
    b = TenantSettings(
        name="b", key_sha256=(hash_key("b"),), requests_per_minute=1, request_burst=1
    )
    await limiter.check(a)
    await limiter.check(b)
    with pytest.raises(RateLimitedError):
        await limiter.check(a)


@pytest.mark.integration
async def test_redis_lua_script_does_the_same_math_as_admit(redis_server: RedisServer) -> None:
    store = RedisRateLimitStore(redis_server.url, prefix=f"t-{free_port()}:")
    memory = MemoryRateLimitStore()
    steps = [  # (now, need, cost)
        (1000.0, 1.0, 1.0), (1000.0, 1.0, 1.0), (1000.0, 1.0, 1.0), (1000.0, 1.0, 1.0),
        (1000.5, 1.0, 1.0), (1001.0, 1.0, 0.0), (1001.0, -1e300, 40.0), (1001.0, 1.0, 1.0),
        (1010.0, 1.0, 1.0), (1009.0, 1.0, 1.0), (1200.0, 1.0, 1.0),
    ]  # fmt: skip
    try:
        for now, need, cost in steps:
            got = await store.admit("k", now, rate=2.0, burst=3.0, need=need, cost=cost)
            want = await memory.admit("k", now, rate=2.0, burst=3.0, need=need, cost=cost)
            assert got[0] == want[0], (now, need, cost)
            assert got[1] == pytest.approx(want[1]), (now, need, cost)
        assert store.errors == 0
    finally:
        await store.aclose()


async def test_redis_unreachable_fails_open_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    store = RedisRateLimitStore(f"redis://127.0.0.1:{free_port()}/0")
    try:
        ok, wait = await store.admit("k", 0.0, rate=1.0, burst=1.0, need=1.0, cost=1.0)
    finally:
        await store.aclose()
    assert ok and wait == 0.0
    assert store.errors == 1
    assert "rate limit store unavailable" in caplog.text


@pytest.mark.integration
async def test_redis_store_closes_its_idle_connections(own_redis: RedisServer) -> None:
    """A burst's connections to the shared limiter's Redis close once idle for
    ``redis_idle_timeout`` (counted by the server), and the next call reconnects."""
    from redis.asyncio import Redis

    from tests.caching.test_redis_idle_timeout import reaper_passes, server_connections

    clock = ManualClock()
    store = RedisRateLimitStore(own_redis.url, idle_timeout=60.0, clock=clock)
    counter = Redis.from_url(own_redis.url)
    admit = {"rate": 100.0, "burst": 100.0, "need": 1.0, "cost": 1.0}
    try:
        await asyncio.gather(*(store.admit(f"k{i}", 0.0, **admit) for i in range(6)))
        assert await server_connections(counter) == 6
        clock.advance(30.0)
        await reaper_passes(store.reaper, counter, 1)
        assert await server_connections(counter) == 6
        clock.advance(30.0)
        await reaper_passes(store.reaper, counter, 2)
        assert await server_connections(counter, expect=0) == 0
        assert (await store.admit("k0", 1.0, **admit))[0]
        assert await server_connections(counter) == 1
        assert store.errors == 0
    finally:
        await store.aclose()
        await counter.aclose()


def test_redis_idle_timeout_is_validated() -> None:
    with pytest.raises(ConfigError, match="redis_idle_timeout"):
        GatewaySettings(redis_idle_timeout=0)
    assert GatewaySettings().redis_idle_timeout == 60.0
