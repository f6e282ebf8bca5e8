"""The source post's code, typed as a user would type it from the post.

Each test is one of the post's snippets with only what a runnable program needs around it
(a node, an upstream, a server to talk to). If one of these fails, the post no longer works
as written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prsm.performance import (
    AILoadBalancer,
    AIRequest,
    CallableUpstream,
    FakeDevice,
    FakeNVML,
    GPUResourceManager,
    IPFSCache,
    MemoryCache,
    MultiTierCache,
    NodeRegistry,
    NodeSpec,
    PerformanceOrchestrator,
    RedisCache,
)
from tests.conftest import RedisServer
from tests.kubo import FakeKubo


async def answer(node: NodeSpec, request: AIRequest) -> dict[str, Any]:
    return {"node": node.id, "choices": [{"message": {"content": "hi"}}]}


async def test_orchestrator_as_the_post_calls_it() -> None:
    perf = PerformanceOrchestrator(
        auto_scaling=False,
        load_balancing="intelligent",
        caching_strategy="multi_tier",
        monitoring_interval=1.0,
    )
    perf.add_node(NodeSpec("gpu-1", models={"llama-3-8b"}, capabilities={"chat"}))
    perf.upstream = CallableUpstream(answer)
    request = AIRequest(model="llama-3-8b", required_capabilities={"chat"})

    endpoint = await perf.select_optimal_endpoint(request)
    result = await perf.execute_with_monitoring(endpoint, request)
    await perf.update_performance_model(request, result)

    assert endpoint.id == "gpu-1" and result.ok
    assert perf.tracker.stats("gpu-1").requests == 1
    again = await perf.handle(request)  # the whole pipeline in one call
    assert again.ok and again.node_id == "gpu-1"
    await perf.close()


async def test_load_balancer_route_request() -> None:
    registry = NodeRegistry()
    registry.add(NodeSpec("a", capabilities={"embeddings"}))
    balancer = AILoadBalancer(registry)
    node = await balancer.route_request(AIRequest(required_capabilities={"embeddings"}))
    assert node.id == "a"


async def test_multi_tier_cache_get_and_set() -> None:
    cache = MultiTierCache()
    await cache.set("answer", {"text": "42"}, ttl=60)
    assert await cache.get("answer") == {"text": "42"}
    assert isinstance(cache.l1, MemoryCache)
    assert cache.l1.max_entries == 1000  # the post's L1 size
    await cache.aclose()


async def test_multi_tier_cache_with_the_posts_tiers(
    redis_server: RedisServer, kubo: tuple[FakeKubo, str], tmp_path: Path
) -> None:
    _, kubo_url = kubo
    cache = MultiTierCache(
        l1=MemoryCache(maxsize=1000),
        l2=RedisCache(redis_server.url),
        l3=IPFSCache(kubo_url, index_dir=tmp_path / "ipfs-index"),
    )
    await cache.set("k", b"value")
    assert [t.name for t in cache.tiers] == ["l2", "l3"]
    fresh = MultiTierCache(
        l1=MemoryCache(), l2=RedisCache(redis_server.url), l3=IPFSCache(kubo_url, tmp_path / "i2")
    )
    assert await fresh.get("k") == b"value"  # from Redis, promoted into the new L1
    await cache.aclose()
    await fresh.aclose()


async def test_gpu_allocation_from_the_request_alone() -> None:
    gpu = GPUResourceManager(FakeNVML([FakeDevice(name="H100", total_bytes=80 * 2**30)]))
    allocation = await gpu.allocate_gpu_resources(AIRequest(model="meta-llama/Llama-3.1-8B"))
    assert allocation.device == "cuda:0" and allocation.on_gpu
    no_gpu = GPUResourceManager(FakeNVML(unavailable="no NVIDIA driver"))
    cpu = await no_gpu.allocate_gpu_resources(AIRequest(model="all-MiniLM-L6-v2"))
    assert cpu.device == "cpu"


async def test_circuit_breaker_as_the_post_builds_and_calls_it() -> None:
    from prsm.performance import CircuitBreaker

    breaker = CircuitBreaker(failure_threshold=5, reset_timeout=60)

    async def func(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"args": args, "kwargs": kwargs}

    assert await breaker.call(func, 1, 2, model="m") == {"args": (1, 2), "kwargs": {"model": "m"}}


def test_auto_scaling_says_that_nothing_scales_yet(caplog: Any) -> None:
    import logging

    with caplog.at_level(logging.WARNING):
        PerformanceOrchestrator(auto_scaling=True, load_balancing="intelligent",
                                caching_strategy="multi_tier", monitoring_interval=1.0)  # fmt: skip
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "nothing scales" in caplog.records[0].getMessage()
