"""The Ray backend against a real local Ray instance sized for two cores: replicas are Ray
actors running the project's OpenAI-compatible upstream simulator; the orchestrator routes to
them over HTTP; scaling down drains a replica without losing the request it holds."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.routing import NodeSpec
from prsm.performance.scaling import RayBackend, ScalingController
from prsm.performance.types import AIRequest
from prsm.performance.upstreams import HttpUpstream

from ..benchmarks.quick import need
from .helpers import until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    need("ray", extra="ray")
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            "env_vars": {"PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
        },
    )
    yield
    ray.shutdown()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(ray_local: None) -> AsyncIterator[tuple[PerformanceOrchestrator, RayBackend]]:
    upstream = HttpUpstream()
    perf = PerformanceOrchestrator(upstream=upstream)
    command = [
        sys.executable, "-m", "prsm.performance.cli", "upstream-sim", "--port", "{port}",
        "--models", "sim-chat", "--latency", "0.5",
    ]  # fmt: skip
    backend = RayBackend(
        command,
        perf.registry,
        NodeSpec("template", models={"sim-chat"}, capabilities={"chat"}),
        actor_options={"num_cpus": 0.5},
        ready_timeout=60.0,
        drain_timeout=30.0,
    )
    yield perf, backend
    await backend.close()
    await perf.close()
    await upstream.aclose()


def chat() -> AIRequest:
    return AIRequest(
        model="sim-chat",
        payload={"model": "sim-chat", "messages": [{"role": "user", "content": "hi"}]},
        timeout=20.0,
    )


async def test_replicas_are_actors_registered_as_nodes(
    served: tuple[PerformanceOrchestrator, RayBackend],
) -> None:
    perf, backend = served
    controller = ScalingController(backend)
    report = await controller.scale_to(2)
    assert report.ok, report.error
    nodes = perf.registry.nodes()
    assert len(nodes) == 2 and all(n.url and n.url.startswith("http://127.0.0.1:") for n in nodes)
    results = await asyncio.gather(*(perf.handle(chat()) for _ in range(6)))
    assert all(r.ok for r in results)
    assert {r.node_id for r in results} == {n.id for n in nodes}


async def test_scaling_down_drains_without_losing_the_request_in_flight(
    served: tuple[PerformanceOrchestrator, RayBackend],
) -> None:
    perf, backend = served
    if len(perf.registry) < 2:
        await backend.scale_to(2)
    victim = list(backend._actors)[-1]  # the newest goes first
    in_flight = [asyncio.create_task(perf.handle(chat())) for _ in range(4)]
    await until(lambda: perf.registry.entry(victim).in_flight > 0)
    status = await backend.scale_to(1)
    assert status.desired == 1 and status.draining == 1
    results = await asyncio.gather(*in_flight)
    assert all(r.ok for r in results)  # nothing in flight lost
    await backend.wait_drained()
    assert victim not in perf.registry and len(perf.registry) == 1
    assert (await perf.handle(chat())).ok
