"""The Redis tier closes the connections its pool keeps idle every ``idle_close`` seconds, so
a burst's connections do not stay open for good (unit tests: a recording client, a manual
clock, no Redis)."""

from __future__ import annotations

import asyncio

import pytest

from prsm.performance.caching.tiers._redis_tier import RedisTier
from prsm.performance.clock import ManualClock
from prsm.performance.errors import CacheError


class _Pool:
    def __init__(self) -> None:
        self.calls: list[bool] = []

    async def disconnect(self, inuse_connections: bool = True) -> None:
        self.calls.append(inuse_connections)


class _Client:
    def __init__(self) -> None:
        self.connection_pool = _Pool()

    async def get(self, key: str) -> bytes | None:
        return None

    async def aclose(self) -> None:
        pass


async def test_idle_connections_close_every_idle_close_seconds() -> None:
    clock = ManualClock()
    client = _Client()
    tier = RedisTier(client=client, idle_close=30.0, clock=clock)
    await tier.get("a")
    clock.advance(29.0)
    await tier.get("a")
    await asyncio.sleep(0)
    assert client.connection_pool.calls == []
    clock.advance(2.0)
    await tier.get("a")
    await tier.get("a")  # once per period, however many commands
    await asyncio.sleep(0)
    assert client.connection_pool.calls == [False]  # idle ones only, never those in use
    clock.advance(31.0)
    await tier.get("a")
    await tier.aclose()
    assert client.connection_pool.calls == [False, False]


def test_idle_close_must_be_positive() -> None:
    with pytest.raises(CacheError, match="idle_close"):
        RedisTier(client=_Client(), idle_close=0)


class _FailingPool(_Pool):
    async def disconnect(self, inuse_connections: bool = True) -> None:
        raise OSError("socket already gone")


async def test_a_failed_close_is_logged_and_commands_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    client = _Client()
    client.connection_pool = _FailingPool()
    tier = RedisTier(client=client, idle_close=1.0, clock=clock)
    clock.advance(2.0)
    assert await tier.get("a") is None
    await tier.aclose()
    assert "closing idle Redis connections failed" in caplog.text
