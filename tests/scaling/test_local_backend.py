"""The local-process backend with real embedding workers: a new worker registers as a node and
serves; a removed one drains first, so the request it holds still gets its answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from prsm.performance.batching import BatcherSettings
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.scaling import LocalProcessBackend, ScalingController
from prsm.performance.types import AIRequest, RequestKind
from prsm.performance.upstreams._dispatch import DispatchUpstream
from prsm.performance.workers import WorkerSettings, start_default_workers

from .helpers import until

pytest.importorskip("sentence_transformers")
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

MODEL = "all-MiniLM-L6-v2"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served() -> AsyncIterator[tuple[PerformanceOrchestrator, LocalProcessBackend]]:
    from prsm.performance.embeddings._model import model_path

    settings = WorkerSettings(
        count=1,
        threads=1,
        model_dir=str(model_path()),
        device="cpu",
        batcher=BatcherSettings(max_batch_size=8, max_queue_delay=0.002),
    )
    pool, nodes, upstream = await start_default_workers(settings)
    perf = PerformanceOrchestrator(nodes=nodes, upstream=DispatchUpstream({"local": upstream}))
    backend = LocalProcessBackend(pool, upstream, perf.registry, drain_timeout=60.0)
    yield perf, backend
    await backend.close()
    await upstream.aclose()
    await pool.close()
    await perf.close()


def embed(texts: list[str]) -> AIRequest:
    return AIRequest(
        model=MODEL,
        kind=RequestKind.EMBEDDING,
        payload={"model": MODEL, "input": texts},
        required_capabilities=frozenset({"embeddings"}),
        timeout=60.0,
    )


async def test_scale_up_starts_a_worker_that_serves_as_a_node(
    served: tuple[PerformanceOrchestrator, LocalProcessBackend],
) -> None:
    perf, backend = served
    report = await ScalingController(backend).scale_to(2)
    assert report.ok, report.error
    assert report.status is not None and report.status.ready == 2
    assert [n.id for n in perf.registry.nodes()] == ["local-embed-0", "local-embed-1"]
    results = await asyncio.gather(*(perf.handle(embed([f"question {i}"])) for i in range(8)))
    assert all(r.ok for r in results)
    assert {r.node_id for r in results} == {"local-embed-0", "local-embed-1"}


async def test_scale_down_drains_the_worker_first(
    served: tuple[PerformanceOrchestrator, LocalProcessBackend],
) -> None:
    perf, backend = served
    if len(perf.registry) < 2:
        await backend.scale_to(2)
    long = [
        f"A long question about the history of the Roman Empire, number {i}." * 6 for i in range(64)
    ]
    requests = [asyncio.create_task(perf.handle(embed(long))) for _ in range(4)]
    await until(
        lambda: sum(perf.registry.entry(n.id).in_flight for n in perf.registry.nodes()) >= 4, 30
    )
    status = await backend.scale_to(1)
    assert status.desired == 1 and status.draining == 1
    results = await asyncio.gather(*requests)
    assert all(r.ok for r in results)  # nothing in flight lost
    await backend.wait_drained()
    assert len(perf.registry) == 1 and len(backend.pool.workers) == 1
    assert (await perf.handle(embed(["still serving"]))).ok
