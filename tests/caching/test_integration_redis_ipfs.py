"""Against real processes and sockets: Redis as L2 (round trip, Redis killed mid-run and
restarted), and the IPFS blob store against a fake Kubo HTTP API on loopback."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prsm.performance.caching import (
    CacheSettings,
    ContentAddressedTier,
    ExactResponseCache,
    KuboBlobStore,
    MultiTierCache,
    RedisTier,
)
from prsm.performance.clock import ManualClock
from prsm.performance.errors import CacheError, CacheIntegrityError
from prsm.performance.types import AIRequest, Response
from tests.conftest import RedisServer
from tests.kubo import FakeKubo

pytestmark = pytest.mark.integration


async def test_redis_tier_round_trip_ttl_prefix_and_tags(redis_server: RedisServer) -> None:
    tier = RedisTier(redis_server.url, namespace="it-rt")
    try:
        await tier.clear()
        await tier.set("a", b"\x00\x01", ttl=30, tags=["g"])
        await tier.set("b:1", b"2", tags=["g", "h"])
        await tier.set("b:2", b"3")
        assert await tier.get("a") == b"\x00\x01"
        ttl_ms = await tier.client.pttl("it-rt:v:a")
        assert 0 < ttl_ms <= 30_000
        assert await tier.client.pttl("it-rt:t:h") == -1  # a member without expiry
        assert await tier.delete_prefix("b:") == 2
        assert await tier.delete_tag("g") == 1
        assert await tier.get("a") is None and await tier.delete("a") is False
        await tier.set("c", b"4")
        await tier.clear()
        assert [k async for k in tier.client.scan_iter(match="it-rt:*")] == []
    finally:
        await tier.aclose()


async def test_multi_tier_with_redis_l2_across_instances(
    redis_server: RedisServer, clock: ManualClock
) -> None:
    settings = CacheSettings(redis_url=redis_server.url, l3="none", namespace="it-share")
    one = MultiTierCache(settings, clock=clock)
    two = MultiTierCache(settings, clock=clock)  # another gateway sharing the Redis
    try:
        await one.set("k", {"answer": 42}, ttl=60)
        found = await two.get_entry("k")
        assert found is not None and found[1] == "l2" and found[0].value == {"answer": 42}
        await two.delete("k")
        one.l1.clear_nowait()  # type: ignore[union-attr]
        assert await one.get("k") is None
        await one.set("bad", "x")
        await one.tiers[0].client.set("it-share:v:bad", b"garbage")  # type: ignore[attr-defined]
        one.l1.clear_nowait()  # type: ignore[union-attr]
        assert await one.get("bad") is None
        assert one.stats()["tiers"]["l2"]["corrupt"] == 1
    finally:
        await one.aclose()
        await two.aclose()


async def test_requests_succeed_while_redis_is_dead_and_l2_recovers(
    own_redis: RedisServer, clock: ManualClock
) -> None:
    settings = CacheSettings(
        redis_url=own_redis.url, l3="none", tier_timeout=0.5, failure_backoff=1.0
    )
    exact = ExactResponseCache(MultiTierCache(settings, clock=clock))
    cache = exact.cache

    def req(text: str) -> AIRequest:
        return AIRequest(model="m", payload={"messages": [{"role": "user", "content": text}]})

    try:
        await exact.store(req("before"), Response(content={"a": 1}))
        own_redis.kill()
        await exact.store(req("during"), Response(content={"a": 2}))  # L2 fails: skipped
        hit = await exact.lookup(req("during"))
        assert hit is not None and hit.tier == "l1"
        assert await exact.lookup(req("never stored")) is None
        assert (await exact.lookup(req("before"))).tier == "l1"  # type: ignore[union-attr]
        st = cache.stats()["tiers"]["l2"]
        assert st["write_errors"] == 1 and st["skipped"] >= 1 and st["up"] is False

        own_redis.start()  # back, empty (no persistence)
        clock.advance(1.0)
        for _ in range(3):  # the first probe may meet a stale pooled connection
            await exact.store(req("after"), Response(content={"a": 3}))
            if cache.stats()["tiers"]["l2"]["up"]:
                break
            clock.advance(60)
        assert cache.stats()["tiers"]["l2"]["up"] is True
        cache.l1.clear_nowait()  # type: ignore[union-attr]
        hit = await exact.lookup(req("after"))
        assert hit is not None and hit.tier == "l2"
    finally:
        await exact.aclose()


async def test_unreachable_redis_is_a_cache_error() -> None:
    from tests.conftest import free_port

    tier = RedisTier(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
    try:
        with pytest.raises(CacheError) as info:
            await tier.get("k")
        assert info.value.tier == "l2"
    finally:
        await tier.aclose()


async def test_a_hung_redis_costs_at_most_the_timeout() -> None:
    """A server that accepts connections and never answers (a partition, a stuck Redis)."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tier = RedisTier(f"redis://127.0.0.1:{port}/0", timeout=0.2)
    try:
        with pytest.raises(CacheError, match="GET failed"):
            await tier.get("k")
        with pytest.raises(CacheError, match="SET failed"):
            await tier.set("k", b"v", tags=["t"])
    finally:
        await tier.aclose()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_ipfs_blob_store_against_a_kubo_api(
    kubo: tuple[FakeKubo, str], tmp_path: Path, clock: ManualClock
) -> None:
    fake, url = kubo
    tier = ContentAddressedTier(tmp_path / "idx", blobs=KuboBlobStore(url), clock=clock)
    try:
        await tier.set("a", b"shared value")
        await tier.set("b", b"shared value")
        assert len(fake.blobs) == 1  # stored once
        assert await tier.get("b") == b"shared value"
        await tier.delete("a")
        assert len(fake.pinned) == 1
        await tier.delete("b")
        assert fake.pinned == set()  # unpinned with the last key
        await tier.set("c", b"value c")
        fake.tamper = True
        with pytest.raises(CacheIntegrityError):
            await tier.get("c")
        fake.tamper = False
        fake.blobs.clear()
        assert await tier.get("c") is None  # gone from the node: a miss
    finally:
        await tier.aclose()


async def test_ipfs_settings_build_a_working_l3(
    kubo: tuple[FakeKubo, str], tmp_path: Path, clock: ManualClock
) -> None:
    fake, url = kubo
    settings = CacheSettings(data_dir=str(tmp_path), l2="none", l3="ipfs", ipfs_api_url=url)
    cache = MultiTierCache(settings, clock=clock)
    try:
        await cache.set("k", {"v": 1})
        cache.l1.clear_nowait()  # type: ignore[union-attr]
        found = await cache.get_entry("k")
        assert found is not None and found[1] == "l3" and len(fake.blobs) == 1
    finally:
        await cache.aclose()


async def test_ipfs_node_down_is_a_cache_error(tmp_path: Path) -> None:
    from tests.conftest import free_port

    store = KuboBlobStore(f"http://127.0.0.1:{free_port()}", timeout=0.5)
    try:
        with pytest.raises(CacheError, match="ipfs"):
            await store.put("d", b"x")
    finally:
        await store.aclose()


def _cluster_ports(n: int) -> list[int]:
    """Free ports whose cluster-bus ports (port + 10000) are free and valid too."""
    import random
    import socket

    ports: list[int] = []
    rng = random.Random()
    while len(ports) < n:
        port = rng.randrange(20000, 30000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        if port not in ports:
            ports.append(port)
    return ports


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[str]:
    """A real three-primary Redis Cluster on free loopback ports."""
    from tests.conftest import IN_CI, wait_for_port

    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        if IN_CI:
            pytest.fail("redis-server/redis-cli are not installed, and CI=true requires them")
        pytest.skip("redis-server/redis-cli are not installed")
    ports = _cluster_ports(3)
    procs = []
    try:
        for port in ports:
            workdir = tmp_path / str(port)
            workdir.mkdir()
            argv = [
                server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf", "--save", "", "--appendonly", "no",
                "--dir", str(workdir),
            ]  # fmt: skip
            procs.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        for port in ports:
            wait_for_port(port)
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        deadline = time.monotonic() + 10
        while (
            b"cluster_state:ok"
            not in subprocess.run(
                [cli, "-p", str(ports[0]), "cluster", "info"], capture_output=True, check=True
            ).stdout
        ):
            if time.monotonic() > deadline:
                raise TimeoutError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


async def test_redis_cluster_l2(redis_cluster: str, clock: ManualClock) -> None:
    tier = RedisTier(redis_cluster, cluster=True, namespace="it-cl")
    try:
        for i in range(30):  # keys and tag sets spread over every primary's slots
            await tier.set(f"p:{i}", b"v%d" % i, ttl=30, tags=["odd"] if i % 2 else [])
        assert await tier.get("p:3") == b"v3"
        assert await tier.delete_tag("odd") == 15
        assert await tier.delete_prefix("p:") == 15
        await tier.set("x", b"1")
        await tier.clear()
        assert await tier.get("x") is None
    finally:
        await tier.aclose()
    settings = CacheSettings(redis_url=redis_cluster, redis_cluster=True, l3="none")
    cache = MultiTierCache(settings, l1=False, clock=clock)
    try:
        await cache.set("k", {"a": 1})
        found = await cache.get_entry("k")
        assert found is not None and found[1] == "l2" and found[0].value == {"a": 1}
    finally:
        await cache.aclose()


async def test_redis_cluster_connections_close_once_the_tier_is_quiet(
    redis_cluster: str, clock: ManualClock
) -> None:
    """A cluster node hands out its connections in turn, so they close once the tier has
    finished no command for ``idle_timeout`` (counted by every primary's ``CLIENT LIST``)."""
    from redis.asyncio import Redis

    tier = RedisTier(
        redis_cluster, cluster=True, namespace="it-idle", idle_timeout=60.0, clock=clock
    )
    await asyncio.gather(*(tier.set(f"k{i}", b"v") for i in range(12)))
    counters = [Redis(host="127.0.0.1", port=node.port) for node in tier.client.get_nodes()]

    async def opened(expect: int | None = None) -> int:
        n = -1
        for _ in range(500):  # round trips, until every primary has seen the closes
            n = 0
            for counter in counters:
                own = await counter.client_id()
                n += sum(1 for c in await counter.client_list() if int(c["id"]) != own)
            if expect is None or n == expect:
                break
        return n

    async def passes(k: int) -> None:
        for _ in range(500):
            if tier.reaper.passes >= k:
                return
            await counters[0].ping()
        raise AssertionError(f"{tier.reaper.passes} passes, not {k}")

    try:
        before = await opened()
        assert before >= len(counters)
        for k in (1, 2):  # quiet for 60 s, but not yet seen by a pass 60 s before
            clock.advance(30.0)
            await passes(k)
        assert await opened() == before
        assert await tier.get("k1") == b"v"  # activity at 60 s
        clock.advance(30.0)
        await passes(3)
        assert await opened() == before  # a command within the last 60 s: kept
        for k in (4, 5):
            clock.advance(30.0)
            await passes(k)
        assert await opened(expect=0) == 0  # quiet since 60 s: all closed
        assert await tier.get("k2") == b"v"  # reconnects
        assert await opened() >= 1
    finally:
        await tier.aclose()
        for counter in counters:
            await counter.aclose()
