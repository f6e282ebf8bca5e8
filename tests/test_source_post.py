"""The source post's code, typed as a user would type it from the post.

Each test is one of the post's snippets with only what a runnable program needs around it
(a node, an upstream, a server to talk to). If one of these fails, the post no longer works
as written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from prsm.performance import (
    AILoadBalancer,
    AIRequest,
    CallableUpstream,
    FakeDevice,
    FakeNVML,
    GPUResourceManager,
    HashingEmbedder,
    InMemoryBackend,
    IPFSCache,
    MemoryCache,
    MultiDimensionalScaler,
    MultiTierCache,
    NodeRegistry,
    NodeSpec,
    OptimizerSettings,
    PerformanceMonitor,
    PerformanceOrchestrator,
    PredictiveScaler,
    RedisCache,
    ResourceOptimizer,
    ScalingAction,
    ScalingSignals,
    SemanticCache,
    SemanticSettings,
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


async def test_auto_scaling_as_the_post_writes_it(caplog: Any) -> None:
    import logging

    from prsm.performance import InMemoryBackend, PredictiveScaler

    perf = PerformanceOrchestrator(auto_scaling=True, load_balancing="intelligent",
                                   caching_strategy="multi_tier", monitoring_interval=1.0,
                                   scaler=PredictiveScaler(InMemoryBackend()))  # fmt: skip
    with caplog.at_level(logging.WARNING):
        async with perf:
            assert perf.snapshot()["scaling"]["running"] is True
    assert not [r for r in caplog.records if r.name.startswith("prsm.performance.orch")]


async def test_semantic_cache_get_similar_and_cache_result() -> None:
    cache = SemanticCache(SemanticSettings(verifier=False), embedder=HashingEmbedder())
    await cache.cache_result("What is the capital of France?", "Paris")
    match = await cache.get_similar("what is the capital of france")
    assert match is not None
    # the post reads it as a dict
    assert match["result"] == "Paris" and match["similarity_score"] > 0.99
    assert match["original_query"] == "What is the capital of France?"
    assert await cache.get_similar("How do I bake sourdough bread?") is None


async def test_predictive_scaler_predict_and_scale() -> None:
    scaler = PredictiveScaler(InMemoryBackend(initial=1))
    out = await scaler.predict_and_scale()
    assert set(out) >= {"predicted_load", "scaling_actions", "expected_cost"}
    assert out["expected_cost"] == out["decision"].target * scaler.settings.cost_per_replica_hour
    await scaler.close()


async def test_multi_dimensional_scaler_determine_scaling_action() -> None:
    scaler = MultiDimensionalScaler()
    hot = ScalingSignals(cpu=0.95, memory=0.9, latency=3.0, queue_depth=1.0, error_rate=0.2)
    assert await scaler.determine_scaling_action(hot) is ScalingAction.SCALE_UP
    idle = ScalingSignals(cpu=0.0, memory=0.0, latency=0.0, queue_depth=0.0, error_rate=0.0)
    assert await scaler.determine_scaling_action(idle) is ScalingAction.SCALE_DOWN


async def test_resource_optimizer_optimize_allocation() -> None:
    from tests.optimize.helpers import small

    spec = small()
    optimizer = ResourceOptimizer(OptimizerSettings(in_process=True, target_gap=0.0))
    allocation = await optimizer.optimize_allocation(spec.workloads, spec.resources)
    assert allocation.cost_per_hour == pytest.approx(3.30)  # the optimum (helpers.small)
    assert allocation.gap == pytest.approx(0.0, abs=1e-9)


async def test_performance_monitor_collect_metrics() -> None:
    monitor = PerformanceMonitor()
    metrics = await monitor.collect_metrics()
    assert {"system", "application", "business"} <= set(metrics)
    assert metrics["system"]["cpu_usage"] is not None
    await monitor.close()
