"""Real worker processes: vectors equal sentence-transformers', batching across requests,
bad input, and a worker killed mid-request (failed clearly, restarted, serving again).

One pool (two single-threaded workers sharing one batcher, loading the model from its
folder through ``model_dir``) is shared by the module; the reference model loads here.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from prsm.performance.batching import BatcherSettings
from prsm.performance.errors import UpstreamError, UpstreamUnavailableError
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.routing._node import NodeSpec
from prsm.performance.types import AIRequest, RequestKind
from prsm.performance.upstreams._dispatch import DispatchUpstream
from prsm.performance.workers import (
    LocalModelUpstream,
    LocalWorkerPool,
    WorkerSettings,
    start_default_workers,
)

pytest.importorskip("sentence_transformers")

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

MODEL = "all-MiniLM-L6-v2"
TEXTS = [
    "How can I get admitted to MIT?",
    "What should I do to join mit?",
    "Why is the sky blue?",
    "A much longer question about the history of the Roman Empire and why it eventually fell.",
]


async def until(condition: Callable[[], bool], limit: float) -> None:
    """Poll ``condition`` (real processes change state on their own) for up to ``limit`` s."""
    async with asyncio.timeout(limit):
        while True:
            if condition():
                return
            await asyncio.sleep(0.005)


def embedding_request(inputs: Any, **extra: Any) -> AIRequest:
    return AIRequest(
        model=MODEL,
        kind=RequestKind.EMBEDDING,
        payload={"model": MODEL, "input": inputs, **extra},
        required_capabilities=frozenset({"embeddings"}),
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served() -> AsyncIterator[tuple[LocalWorkerPool, list[NodeSpec], LocalModelUpstream]]:
    from prsm.performance.embeddings._model import model_path

    settings = WorkerSettings(
        count=2,
        threads=1,
        model_dir=str(model_path()),
        device="auto",
        restart_backoff=0.1,
        batcher=BatcherSettings(max_batch_size=32, max_queue_delay=0.002),
    )
    pool, nodes, upstream = await start_default_workers(settings)
    yield pool, nodes, upstream
    await upstream.aclose()
    await pool.close()


@pytest.fixture(scope="module")
def reference() -> Any:
    from prsm.performance.embeddings._model import load_sentence_transformer

    return load_sentence_transformer(device="cpu")


async def test_nodes_offer_embeddings_for_the_model_and_alias(served: Any) -> None:
    pool, nodes, _ = served
    assert [n.id for n in nodes] == ["local-embed-0", "local-embed-1"]
    node = nodes[0]
    assert "embeddings" in node.capabilities
    assert {MODEL, "text-embedding-all-minilm-l6-v2"} <= node.models
    assert node.meta["upstream"] == "local"
    assert [w.device for w in pool.workers] == ["cpu", "cpu"]  # no GPU on this machine
    assert [w.threads for w in pool.workers] == [1, 1]


async def test_ready_workers_report_their_process_load(served: Any) -> None:
    pool, _, upstream = served
    upstream.node_metrics()  # the first reading of a process has no cpu interval
    await upstream.execute(pool.nodes()[0], embedding_request(TEXTS))
    readings = upstream.node_metrics()
    assert set(readings) == {w.id for w in pool.ready()}
    for reading in readings.values():
        assert reading.cpu is not None and 0.0 <= reading.cpu <= 1.0
        assert reading.memory is not None and 0.0 < reading.memory < 1.0  # a model is loaded
        assert reading.queue_depth == 0


async def test_vectors_equal_sentence_transformers(served: Any, reference: Any) -> None:
    _, nodes, upstream = served
    response = await upstream.execute(nodes[0], embedding_request(TEXTS))
    body = response.content
    assert body["object"] == "list" and body["model"] == MODEL
    assert [d["index"] for d in body["data"]] == [0, 1, 2, 3]
    assert all(d["object"] == "embedding" for d in body["data"])
    got = np.array([d["embedding"] for d in body["data"]])
    expected = reference.encode(TEXTS)
    assert got.shape == (4, 384)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > len(TEXTS)
    assert response.tokens == body["usage"]["total_tokens"]


async def test_single_string_and_base64(served: Any, reference: Any) -> None:
    _, nodes, upstream = served
    response = await upstream.execute(
        nodes[0], embedding_request(TEXTS[2], encoding_format="base64")
    )
    raw = base64.b64decode(response.content["data"][0]["embedding"])
    vector = np.frombuffer(raw, dtype="<f4")
    np.testing.assert_allclose(vector, reference.encode(TEXTS[2]), atol=1e-5)


async def test_concurrent_requests_share_batches(served: Any) -> None:
    _, nodes, upstream = served
    before = upstream.stats()["local-embed-0"]["batcher"]
    texts = [f"question {i}: what is the capital of country number {i}?" for i in range(24)]
    results = await asyncio.gather(
        *(upstream.execute(nodes[0], embedding_request(t)) for t in texts)
    )
    assert len(results) == 24
    after = upstream.stats()["local-embed-0"]["batcher"]
    assert after["items"] - before["items"] == 24
    assert after["batches"] - before["batches"] < 24
    assert after["curve"], "the measured curve is visible in stats"


async def test_batches_go_to_the_least_busy_worker(served: Any) -> None:
    pool, nodes, upstream = served
    before = [w.batches for w in pool.workers]
    # two requests of a full batch each, both to the first node: the shared batcher runs
    # batches side by side, on both workers
    texts = [[f"request {r}, question {i}: why is water wet?" for i in range(32)] for r in (1, 2)]
    await asyncio.gather(*(upstream.execute(nodes[0], embedding_request(t)) for t in texts))
    assert all(w.batches > b for w, b in zip(pool.workers, before, strict=True))
    stats = upstream.stats()
    assert stats["local-embed-0"]["batcher"] == stats["local-embed-1"]["batcher"]
    assert stats["local-embed-1"]["batches"] == pool.workers[1].batches


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": []}, "input"),
        ({"input": ["ok", ""]}, "input[1]"),
        ({"input": [[1, 2, 3]]}, "input"),
        ({"input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"input": "x", "dimensions": 128}, "dimensions"),
    ],
)
async def test_bad_bodies_are_client_errors_naming_the_field(
    served: Any, body: dict[str, Any], field: str
) -> None:
    _, nodes, upstream = served
    request = AIRequest(model=MODEL, kind=RequestKind.EMBEDDING, payload=body)
    with pytest.raises(UpstreamError) as err:
        await upstream.execute(nodes[0], request)
    assert err.value.status == 400 and err.value.retryable is False
    assert f"{field}:" in str(err.value)


async def test_chat_requests_are_refused(served: Any) -> None:
    _, nodes, upstream = served
    request = AIRequest(model=MODEL, kind=RequestKind.CHAT, payload={"messages": []})
    with pytest.raises(UpstreamError, match="embeddings only") as err:
        await upstream.execute(nodes[0], request)
    assert err.value.status == 400


async def test_unknown_model_is_not_found(served: Any) -> None:
    _, nodes, upstream = served
    request = AIRequest(model="gpt-4o", kind=RequestKind.EMBEDDING, payload={"input": "x"})
    with pytest.raises(UpstreamError) as err:
        await upstream.execute(nodes[0], request)
    assert err.value.status == 404


async def test_through_the_orchestrator_with_dispatch(served: Any) -> None:
    _, nodes, upstream = served
    perf = PerformanceOrchestrator(nodes=nodes, upstream=DispatchUpstream({"local": upstream}))
    result = await perf.handle(embedding_request(["hello there"]))
    assert result.ok and result.node_id in {"local-embed-0", "local-embed-1"}
    assert len(result.content["data"][0]["embedding"]) == 384


async def test_a_worker_killed_mid_request_fails_it_clearly_and_restarts(served: Any) -> None:
    pool, nodes, upstream = served
    long_texts = [f"{TEXTS[3]} Variation {i}." * 4 for i in range(32)]
    task = asyncio.create_task(upstream.execute(nodes[0], embedding_request(long_texts)))
    await until(lambda: any(w.in_flight > 0 for w in pool.workers), 30)
    index = next(i for i, w in enumerate(pool.workers) if w.in_flight > 0)
    worker, other = pool.workers[index], pool.workers[1 - index]
    first_pid = worker.pid
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)
    with pytest.raises(UpstreamUnavailableError) as err:
        async with asyncio.timeout(30):
            await task
    assert err.value.retryable and err.value.status == 503
    assert "in flight" in str(err.value)
    # while it restarts, requests to its node fail at once (retryable), never hang...
    with pytest.raises(UpstreamUnavailableError, match="restarting"):
        await upstream.execute(nodes[index], embedding_request("too early"))
    # ...and the other worker serves its node's requests meanwhile
    served_by_other = other.batches
    response = await upstream.execute(nodes[1 - index], embedding_request("meanwhile"))
    assert len(response.content["data"]) == 1 and other.batches == served_by_other + 1
    await until(lambda: worker.state == "ready" and worker.pid != first_pid, 120)
    assert worker.starts == 2 and worker.last_exit == -signal.SIGKILL
    response = await upstream.execute(nodes[index], embedding_request("back again"))
    assert len(response.content["data"]) == 1


async def test_disabled_workers_start_nothing() -> None:
    pool, nodes, upstream = await start_default_workers(WorkerSettings(enabled=False))
    assert nodes == [] and pool.workers == [] and upstream.batchers == {}
    await pool.close()
