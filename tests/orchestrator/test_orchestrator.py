"""PerformanceOrchestrator: the seed API, handle() with retries and deadlines, streams,
metrics in the injected registry, node management, options."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import prometheus_client
import pytest

from prsm.performance.caching._base import CacheHit
from prsm.performance.clock import ManualClock, SystemClock
from prsm.performance.config import load_config
from prsm.performance.errors import (
    CircuitBreakerOpenError,
    ConfigError,
    DeadlineExceededError,
    NoCapableNodesError,
    UnknownModelError,
    UpstreamError,
    UpstreamTimeoutError,
)
from prsm.performance.monitoring._registry import MetricsRegistry
from prsm.performance.orchestrator import OrchestratorSettings
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.resilience import BreakerSettings, CircuitState
from prsm.performance.routing._node import NodeMetrics, NodeSpec, NodeState
from prsm.performance.types import AIRequest, Response
from prsm.performance.upstreams._base import CallableUpstream

from .conftest import SleepRecordingClock


def _sample(perf: PerformanceOrchestrator, name: str, **labels: str) -> float | None:
    value = perf.metrics.registry.get_sample_value(f"prsm_{name}", labels)
    return value


class Recorder:
    """An in-process upstream whose nodes answer, fail or misbehave as told."""

    def __init__(self, clock: ManualClock | None = None) -> None:
        self.calls: list[str] = []
        self.fail: dict[str, UpstreamError] = {}
        self.delay: dict[str, float] = {}
        self.clock = clock

    def __call__(self, node: NodeSpec, request: AIRequest) -> Any:
        self.calls.append(node.id)
        if node.id in self.delay and self.clock is not None:
            self.clock.advance(self.delay[node.id])
        if node.id in self.fail:
            raise self.fail[node.id]
        return {"node": node.id}


def _perf(clock: ManualClock, rec: Recorder, n: int = 3, **kw: Any) -> PerformanceOrchestrator:
    kw.setdefault("load_balancing", "round_robin")
    return PerformanceOrchestrator(
        nodes=[NodeSpec(f"n{i}", models={"m"}) for i in range(n)],
        upstream=CallableUpstream(rec),
        clock=clock,
        rng=random.Random(0),
        **kw,
    )


REQ = AIRequest(model="m", payload={"messages": []})


async def test_seed_api_works_as_written() -> None:
    perf = PerformanceOrchestrator(
        auto_scaling=True,
        load_balancing="intelligent",
        caching_strategy="multi_tier",
        monitoring_interval=1.0,
    )
    perf.add_node(NodeSpec("gpu-1", models={"llama"}, capabilities={"chat"}))
    perf.upstream = CallableUpstream(lambda node, req: f"hello from {node.id}")
    request = AIRequest(model="llama", required_capabilities={"chat"})
    endpoint = await perf.select_optimal_endpoint(request)
    result = await perf.execute_with_monitoring(endpoint, request)
    await perf.update_performance_model(request, result)
    assert endpoint.id == "gpu-1"
    assert result.ok and result.content == "hello from gpu-1"
    assert perf.tracker.stats("gpu-1").requests == 1
    snap = perf.snapshot()
    assert snap["auto_scaling"] is True and snap["caching_strategy"] == "multi_tier"
    assert snap["cache"] is not None  # multi_tier builds the exact tiers
    assert perf.settings.monitoring_interval == 1.0


async def test_handle_retries_on_the_next_node(clock: ManualClock) -> None:
    rec = Recorder()
    perf = _perf(clock, rec)
    rec.fail["n0"] = UpstreamError("n0", "HTTP 503", status=503)
    result = await perf.handle(REQ)
    assert result.ok and result.node_id == "n1" and result.attempts == 2
    assert rec.calls == ["n0", "n1"]
    assert _sample(perf, "orchestrator_retries_total", reason="server_error") == 1.0
    assert _sample(perf, "node_failures_total", node="n0") == 1.0
    assert _sample(perf, "orchestrator_requests_total", outcome="ok") == 1.0


async def test_failing_node_opens_its_breaker_and_is_skipped(clock: ManualClock) -> None:
    rec = Recorder()
    perf = _perf(clock, rec, n=2, breaker_settings=BreakerSettings(failure_threshold=2,
                                                                    reset_timeout=30))  # fmt: skip
    rec.fail["n0"] = UpstreamError("n0", "down")
    for _ in range(6):
        assert (await perf.handle(REQ)).node_id == "n1"
    assert rec.calls.count("n0") == 2
    assert perf.breakers.get("n0").state is CircuitState.OPEN
    assert _sample(perf, "breaker_transitions_total", node="n0", state="open") == 1.0
    clock.advance(30)  # half-open: one probe goes to n0 again, and it recovered
    del rec.fail["n0"]
    results = [await perf.handle(REQ) for _ in range(4)]
    assert "n0" in {r.node_id for r in results}
    assert perf.breakers.get("n0").state is CircuitState.CLOSED


async def test_non_retryable_error_is_raised_at_once(clock: ManualClock) -> None:
    rec = Recorder()
    perf = _perf(clock, rec)
    rec.fail["n0"] = UpstreamError("n0", "bad request", status=400, retryable=False)
    with pytest.raises(UpstreamError) as info:
        await perf.handle(REQ)
    assert info.value.status == 400
    assert rec.calls == ["n0"]
    assert perf.breakers.get("n0").snapshot.failures == 0  # a client's error: node is fine
    assert perf.tracker.stats("n0").requests == 0
    assert _sample(perf, "orchestrator_requests_total", outcome="error") == 1.0


async def test_deadline_stops_retries(clock: ManualClock) -> None:
    rec = Recorder(clock)
    perf = _perf(clock, rec)
    rec.fail["n0"] = UpstreamError("n0", "slow and failing")
    rec.delay["n0"] = 5.0
    with pytest.raises(DeadlineExceededError) as info:
        await perf.handle(AIRequest(model="m", timeout=2.0))
    assert info.value.attempts == 1 and rec.calls == ["n0"]
    assert isinstance(info.value.last_error, UpstreamError)


async def test_a_hung_node_is_cut_off_at_the_deadline() -> None:
    async def hang(node: NodeSpec, request: AIRequest) -> None:
        await asyncio.Event().wait()

    perf = PerformanceOrchestrator(
        nodes=[NodeSpec("a", models={"m"}), NodeSpec("b", models={"m"})],
        upstream=CallableUpstream(hang),
        clock=SystemClock(),
    )
    with pytest.raises((DeadlineExceededError, UpstreamTimeoutError)):
        # a microsecond's budget: the timer fires on the loop's next turn, no real wait
        await perf.handle(AIRequest(model="m", timeout=1e-6))
    assert all(e.in_flight == 0 for e in perf.registry.entries())


async def test_out_of_attempts_raises_the_last_upstream_error(clock: ManualClock) -> None:
    rec = Recorder()
    perf = _perf(clock, rec, n=3)
    for i in range(3):
        rec.fail[f"n{i}"] = UpstreamError(f"n{i}", "down")
    with pytest.raises(UpstreamError, match="n2"):
        await perf.handle(REQ)
    assert rec.calls == ["n0", "n1", "n2"]


async def test_the_only_node_is_retried_after_back_offs(auto_clock: SleepRecordingClock) -> None:
    rec = Recorder()
    perf = _perf(auto_clock, rec, n=1, settings=OrchestratorSettings(retry_jitter=0.0))
    perf.upstream = CallableUpstream(lambda n, r: (_ for _ in ()).throw(RuntimeError("x")))
    with pytest.raises(UpstreamError, match="RuntimeError: x"):
        await perf.handle(REQ)  # the only node failed three times: attempts spent
    assert auto_clock.slept == [0.1, 0.2]  # back-off between rounds: 0.1 s, then doubled
    assert _sample(perf, "orchestrator_gave_up_total", reason="attempts") == 1.0
    assert _sample(perf, "orchestrator_retries_total", reason="unavailable") == 2.0


async def test_routing_errors(clock: ManualClock) -> None:
    perf = _perf(clock, Recorder(), n=2)
    with pytest.raises(UnknownModelError, match="gpt-9"):
        await perf.handle(AIRequest(model="gpt-9"))
    with pytest.raises(NoCapableNodesError) as info:
        await perf.handle(AIRequest(model="m", required_capabilities={"vision"}))
    assert "required [model:m, vision]" in str(info.value)
    assert "n0: [model:m]" in str(info.value)
    perf.drain_node("n0")
    perf.drain_node("n1")
    with pytest.raises(NoCapableNodesError, match="n0 \\(draining\\)"):
        await perf.select_optimal_endpoint(REQ)


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"load_balancing": "fastest"}, "load_balancing"),
        ({"caching_strategy": "disk"}, "caching_strategy"),
        ({"monitoring_interval": 0.0}, "monitoring_interval"),
        ({"auto_scaling": "yes"}, "auto_scaling"),
    ],
)
def test_unknown_option_values_are_value_errors(kwargs: dict[str, Any], option: str) -> None:
    with pytest.raises(ValueError, match=option) as info:
        PerformanceOrchestrator(**kwargs)
    if option == "load_balancing":
        assert "intelligent" in str(info.value) and "power_of_two" in str(info.value)
    if option == "caching_strategy":
        assert "multi_tier+semantic" in str(info.value)


async def test_no_upstream_is_a_clear_error() -> None:
    perf = PerformanceOrchestrator(nodes=[NodeSpec("a", models={"m"})])
    with pytest.raises(ConfigError, match="no upstream configured"):
        await perf.handle(REQ)


async def test_metrics_go_to_the_injected_registry_only(clock: ManualClock) -> None:
    metrics = MetricsRegistry()
    perf = _perf(clock, Recorder(), metrics=metrics)
    await perf.handle(REQ)
    text = metrics.exposition().decode()
    assert 'prsm_node_picks_total{node="n0"} 1.0' in text
    assert "prsm_node_latency_seconds_bucket" in text
    assert "prsm_orchestrator_request_latency_seconds_count 1.0" in text
    assert (
        prometheus_client.REGISTRY.get_sample_value("prsm_node_picks_total", {"node": "n0"}) is None
    )


async def test_nodes_are_managed_at_run_time(clock: ManualClock) -> None:
    rec = Recorder()
    perf = _perf(clock, rec, n=1)
    perf.add_node(NodeSpec("big", models={"m", "x"}))
    assert perf.models() == ["m", "x"]
    assert (await perf.handle(AIRequest(model="x"))).node_id == "big"
    perf.update_node(NodeSpec("big", models={"x"}))
    perf.drain_node("n0")
    with pytest.raises(NoCapableNodesError):
        await perf.handle(REQ)
    perf.activate_node("n0")
    perf.update_node_metrics("n0", NodeMetrics(cpu=0.5))
    assert perf.registry.metrics("n0").cpu == 0.5
    assert (await perf.handle(REQ)).node_id == "n0"
    perf.remove_node("big")
    assert perf.models() == ["m"]
    assert "big" not in perf.breakers
    assert _sample(perf, "node_picks_total", node="big") is None
    assert perf.registry.state("n0") is NodeState.ACTIVE


class DictCache:
    """A ResponseCache test double keyed by the payload."""

    def __init__(self) -> None:
        self.data: dict[str, Response] = {}

    async def lookup(self, request: AIRequest) -> CacheHit | None:
        found = self.data.get(repr(request.payload))
        return CacheHit(found, "memory") if found else None

    async def store(self, request: AIRequest, response: Response) -> None:
        self.data[repr(request.payload)] = response


async def test_cache_is_read_and_written_by_mode(clock: ManualClock) -> None:
    rec = Recorder()
    cache = DictCache()
    perf = _perf(clock, rec, cache=cache, caching_strategy="memory")
    first = await perf.handle(REQ)
    second = await perf.handle(REQ)
    assert first.cache is None and second.cache == "memory" and second.attempts == 0
    assert rec.calls == ["n0"]
    await perf.handle(AIRequest(model="m", payload={"messages": []}, cache_mode="no-cache"))
    assert len(rec.calls) == 2
    await perf.handle(AIRequest(model="m", payload={"q": 1}, cache_mode="no-store"))
    assert "{'q': 1}" not in cache.data
    assert _sample(perf, "orchestrator_requests_total", outcome="cache_hit") == 1.0


async def test_execute_with_monitoring_never_raises_for_upstream_failures(
    clock: ManualClock,
) -> None:
    rec = Recorder()
    perf = _perf(clock, rec, n=1, breaker_settings=BreakerSettings(failure_threshold=1))
    rec.fail["n0"] = UpstreamError("n0", "down")
    node = await perf.select_optimal_endpoint(REQ)
    result = await perf.execute_with_monitoring(node, REQ)
    assert not result.ok and isinstance(result.error, UpstreamError)
    refused = await perf.execute_with_monitoring(node, REQ)
    assert isinstance(refused.error, CircuitBreakerOpenError)
    assert refused.error.retry_after == pytest.approx(60.0)
    await perf.update_performance_model(REQ, refused)  # teaches nothing
    assert perf.tracker.stats("n0").requests == 0


class Streamer:
    """A streaming upstream double."""

    def __init__(self) -> None:
        self.fail_before: set[str] = set()
        self.fail_after: set[str] = set()

    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        return Response(content=node.id)

    async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        if node.id in self.fail_before:
            raise UpstreamError(node.id, "refused")
        for i in range(3):
            yield f"data: {node.id} {i}\n\n".encode()
            if node.id in self.fail_after:
                raise UpstreamError(node.id, "dropped mid-stream")


async def test_stream_retries_only_before_the_first_chunk(clock: ManualClock) -> None:
    up = Streamer()
    perf = PerformanceOrchestrator(
        load_balancing="round_robin",
        nodes=[NodeSpec("a", models={"m"}), NodeSpec("b", models={"m"})],
        upstream=up,
        clock=clock,
    )
    up.fail_before.add("a")
    chunks = [c async for c in perf.handle_stream(REQ)]
    assert chunks == [b"data: b 0\n\n", b"data: b 1\n\n", b"data: b 2\n\n"]
    assert perf.tracker.stats("b").requests == 1 and perf.tracker.stats("a").failures == 1
    up.fail_before.clear()
    up.fail_after.add("a")
    got: list[bytes] = []
    with pytest.raises(UpstreamError, match="mid-stream"):
        async for c in perf.handle_stream(REQ):
            got.append(c)
    assert got == [b"data: a 0\n\n"]
    assert all(e.in_flight == 0 for e in perf.registry.entries())


async def test_stream_needs_a_streaming_upstream(clock: ManualClock) -> None:
    perf = _perf(clock, Recorder())
    with pytest.raises(ConfigError, match="cannot stream"):
        async for _ in perf.handle_stream(REQ):
            pass


async def test_stream_closed_early_releases_the_node(clock: ManualClock) -> None:
    perf = PerformanceOrchestrator(nodes=[NodeSpec("a", models={"m"})], upstream=Streamer(),
                                   clock=clock)  # fmt: skip
    agen = perf.handle_stream(REQ)
    assert await agen.__anext__() == b"data: a 0\n\n"
    assert perf.registry.metrics("a").in_flight == 1
    await agen.aclose()  # type: ignore[attr-defined]
    assert perf.registry.metrics("a").in_flight == 0
    assert perf.breakers.get("a").state is CircuitState.CLOSED


async def test_monitoring_loop_refreshes_gauges(clock: ManualClock) -> None:
    closed: list[bool] = []

    class ClosingUpstream(CallableUpstream):
        async def aclose(self) -> None:
            closed.append(True)

    perf = PerformanceOrchestrator(
        nodes=[NodeSpec("a", models={"m"})],
        upstream=ClosingUpstream(lambda n, r: 1),
        clock=clock,
        monitoring_interval=5.0,
    )
    async with perf:
        await asyncio.sleep(0)
        assert _sample(perf, "node_in_flight", node="a") == 0.0
        perf.registry.acquire("a")
        clock.advance(5.0)
        await asyncio.sleep(0)
        assert _sample(perf, "node_in_flight", node="a") == 1.0
        assert _sample(perf, "breaker_state", node="a") == 0.0
    assert closed == [True]


def test_from_config(tmp_path: Any) -> None:
    path = tmp_path / "prsm.yaml"
    path.write_text(
        "nodes:\n  - {id: a, models: [m], capabilities: [chat]}\n"
        "routing: {strategy: least_loaded}\n"
        "breaker: {failure_threshold: 3}\n"
        "orchestrator: {default_timeout: 5, max_attempts: 2}\n"
    )
    perf = PerformanceOrchestrator.from_config(load_config(path))
    assert perf.balancer.strategy == "least_loaded"
    assert perf.breaker_settings.failure_threshold == 3
    assert perf.settings.max_attempts == 2
    assert perf.registry.get("a").capabilities == {"chat"}


def gated(gate: asyncio.Event) -> CallableUpstream:
    """An upstream whose every call waits for ``gate``, then answers its node's id."""

    async def slow(node: NodeSpec, request: AIRequest) -> str:
        await gate.wait()
        return node.id

    return CallableUpstream(slow)


async def test_full_nodes_are_not_picked_and_in_flight_returns_to_zero(clock: ManualClock) -> None:
    gate = asyncio.Event()
    perf = PerformanceOrchestrator(
        nodes=[NodeSpec(f"n{i}", models={"m"}, max_concurrency=2) for i in range(2)],
        upstream=gated(gate),
        clock=clock,
    )
    tasks = [asyncio.create_task(perf.handle(REQ)) for _ in range(4)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert [e.in_flight for e in perf.registry.entries()] == [2, 2]
    with pytest.raises(NoCapableNodesError, match="full \\(2/2 in flight\\)"):
        await perf.handle(REQ)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert sorted(r.node_id or "" for r in results) == ["n0", "n0", "n1", "n1"]
    assert [e.in_flight for e in perf.registry.entries()] == [0, 0]


ORCH_LOG = "prsm.performance.orchestrator._orchestrator"


async def test_auto_scaling_without_a_scaler_logs_one_clear_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    perf = PerformanceOrchestrator(auto_scaling=True, load_balancing="intelligent")
    with caplog.at_level(logging.WARNING):
        async with perf:
            pass
    warned = [r for r in caplog.records if r.name == ORCH_LOG]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING
    assert "auto_scaling=True but no scaler" in warned[0].getMessage()
    assert "scaler=PredictiveScaler(backend)" in warned[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        async with PerformanceOrchestrator(auto_scaling=False):
            pass
        async with PerformanceOrchestrator():
            pass
    assert not [r for r in caplog.records if r.name == ORCH_LOG]


async def test_an_attached_scaler_runs_with_the_orchestrator(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from prsm.performance.scaling import InMemoryBackend, PredictiveScaler, PredictiveSettings

    clock = ManualClock()
    backend = InMemoryBackend(clock=clock, initial=1)
    scaler = PredictiveScaler(backend, PredictiveSettings(min_replicas=2, max_replicas=4),
                              clock=clock)  # fmt: skip
    perf = PerformanceOrchestrator(auto_scaling=True, scaler=scaler, clock=clock)
    assert perf.snapshot()["scaling"]["running"] is False
    with caplog.at_level(logging.WARNING):
        async with perf:
            assert scaler.loop._task is not None  # started with the orchestrator
            out = await scaler.predict_and_scale()  # one step, as the loop takes them
            assert out["decision"].target >= 2  # the floor
            shown = perf.snapshot()["scaling"]
            assert shown["running"] is True and shown["policy"] == "predictive"
            assert shown["steps"] and shown["steps"][-1]["target"] >= 2  # the floor
            with pytest.raises(ConfigError, match="already attached"):
                perf.attach_scaler(scaler)
        assert scaler.loop._task is None  # closed with it
    assert not [r for r in caplog.records if r.name == ORCH_LOG]
    assert backend.calls and backend.calls[0] == 2  # scaled up to the floor through the backend


async def test_a_node_removed_mid_attempt_is_not_learned_again(clock: ManualClock) -> None:
    gate = asyncio.Event()
    perf = PerformanceOrchestrator(nodes=[NodeSpec("a", models={"m"})], upstream=gated(gate),
                                   clock=clock)  # fmt: skip
    task = asyncio.create_task(perf.handle(REQ))
    await asyncio.sleep(0)
    perf.remove_node("a")
    gate.set()
    assert (await task).ok
    assert "a" not in perf.tracker.all()


async def test_a_nodes_own_queue_time_is_the_queue_stage() -> None:
    async def answer(node: NodeSpec, request: AIRequest) -> Response:
        return Response(content={"ok": True}, queue_seconds=0.25)

    perf = PerformanceOrchestrator(nodes=[NodeSpec("a", models={"m"})],
                                   upstream=CallableUpstream(answer))  # fmt: skip
    result = await perf.handle(REQ)
    assert result.timings["queue"] == 0.25
    text = perf.metrics.exposition().decode()
    assert 'prsm_request_stage_seconds_count{stage="queue"} 1.0' in text


async def test_the_scalers_last_step_is_collected_into_the_history() -> None:
    from prsm.performance.monitoring import MemoryMetricsStore
    from prsm.performance.monitoring._flatten import flatten_metrics
    from prsm.performance.scaling import InMemoryBackend, PredictiveScaler, PredictiveSettings

    clock = ManualClock()
    scaler = PredictiveScaler(InMemoryBackend(clock=clock), PredictiveSettings(min_replicas=2),
                              clock=clock)  # fmt: skip
    perf = PerformanceOrchestrator(scaler=scaler, clock=clock)
    assert "scaling" not in await perf.monitor.collect_metrics()  # no step yet
    await scaler.predict_and_scale()
    collected = await perf.monitor.collect_metrics()
    assert collected["scaling"]["target"] == 2 and collected["scaling"]["ready"] == 1
    names = {s.metric for s in flatten_metrics(collected)}
    assert {"scaling.target", "scaling.ready", "scaling.score"} <= names
    store = MemoryMetricsStore()
    store.write(flatten_metrics(collected))
    assert store.query("scaling.target", since=0, until=clock.time() + 1)[0].points[0][1] == 2
    await perf.close()
