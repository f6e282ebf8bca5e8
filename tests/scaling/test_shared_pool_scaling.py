"""``serve --workers N`` shares one worker pool between the gateway processes, and with
auto-scaling the serving parent scales it: each change of its serving workers is pushed to
every gateway process, which adds and removes the nodes as it is told."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from prsm.performance.batching import BatcherSettings
from prsm.performance.errors import UpstreamUnavailableError
from prsm.performance.gateway._admin import AdminApi
from prsm.performance.monitoring._monitor import scaling_figures
from prsm.performance.orchestrator._orchestrator import (
    AUTO_SCALING_WARNING,
    PerformanceOrchestrator,
)
from prsm.performance.routing._node import NodeSpec
from prsm.performance.scaling import PredictiveSettings
from prsm.performance.serve._local_workers import attach_local_workers
from prsm.performance.serve._pool_client import SharedPoolUpstream
from prsm.performance.serve._shared_pool import POOL_SOCKET_ENV, PoolHost
from prsm.performance.types import AIRequest, JSONBody, RequestKind
from prsm.performance.upstreams._base import CallableUpstream
from prsm.performance.upstreams._dispatch import DispatchUpstream
from prsm.performance.workers._protocol import pack, read_message
from prsm.performance.workers._settings import WorkerSettings

from .helpers import until


def _node(i: int) -> dict[str, Any]:
    name = f"local-embed-{i}"
    return {"id": name, "models": ["mini"], "capabilities": ["embeddings"],
            "max_concurrency": 8, "meta": {"upstream": "local", "worker": name}}  # fmt: skip


def _scaling(steps: int) -> dict[str, Any]:
    """A scaler snapshot as the host pushes it (the loop's own shape)."""
    return {"policy": "predictive", "running": True, "interval": 15.0,
            "steps": [{"at": float(i), "target": 1 + i} for i in range(steps)],
            "actions": [{"target": 1 + i} for i in range(steps)]}  # fmt: skip


async def test_a_gateway_process_follows_the_pools_pushed_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The production path of a gateway process (``attach_local_workers`` under the shared
    pool's socket) against a scripted pool that scales 1 → 3 → 2 workers, and shows the
    parent's scaler as its own ``/admin/scaling``."""
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            while True:
                message = await read_message(reader)
                if message["op"] == "hello":
                    writer.write(pack({"op": "nodes", "nodes": [_node(0)]}))
                    writer.write(pack({"op": "scaling", "scaling": _scaling(1), "pid": 4242}))
        except asyncio.IncompleteReadError:
            return  # the gateway process closed its connection
        finally:
            writer.close()

    path = str(tmp_path / "pool.sock")
    server = await asyncio.start_unix_server(serve, path=path)
    monkeypatch.setenv(POOL_SOCKET_ENV, path)
    remote = CallableUpstream(lambda node, request: {"ok": True})
    perf = PerformanceOrchestrator(
        auto_scaling=True, upstream=DispatchUpstream({"http": remote}), monitoring_interval=3600
    )
    perf.add_node(NodeSpec(id="remote", models=frozenset({"gpt"})))
    app: Any = SimpleNamespace(on_startup=[], on_shutdown=[], perf=perf, metric_sources=[],
                               metrics=perf.metrics, combine_metrics=None)  # fmt: skip
    attach_local_workers(app, WorkerSettings(count=1), PredictiveSettings())
    assert len(app.on_startup) == 1 and app.on_shutdown == []  # joins; scales nothing itself
    await app.on_startup[0](app)
    with caplog.at_level(logging.WARNING):
        await perf.start()  # as the gateway does, after its startup hooks
    assert AUTO_SCALING_WARNING not in caplog.messages  # the parent scales: no warning

    admin = AdminApi(perf)
    status, body = admin.handle("GET", "/admin/scaling", b"")
    shown = orjson.loads(body)["scaling"]
    assert status == 200 and shown["policy"] == "predictive" and len(shown["steps"]) == 1
    assert shown["scaled_by"] == "the serving parent (pid 4242)"
    writers[0].write(pack({"op": "scaling", "scaling": _scaling(3), "pid": 4242}))  # a step
    await until(lambda: len(perf.snapshot()["scaling"]["steps"]) == 1 and  # last=1
                len(orjson.loads(admin.handle("GET", "/admin/scaling", b"")[1])
                    ["scaling"]["steps"]) == 3)  # fmt: skip
    assert perf.snapshot()["scaling"]["steps"][0]["target"] == 3
    figures = scaling_figures(perf.scaler)  # what each monitoring collection keeps
    assert figures is not None and figures["target"] == 3

    def ids() -> set[str]:
        return {n.id for n in perf.registry.nodes()}

    assert ids() == {"remote", "local-embed-0"}
    writers[0].write(pack({"op": "nodes", "nodes": [_node(0), _node(1), _node(2)]}))
    await until(lambda: ids() == {"remote", "local-embed-0", "local-embed-1", "local-embed-2"})
    perf.registry.acquire("local-embed-1")  # a request it holds
    writers[0].write(pack({"op": "nodes", "nodes": [_node(0), _node(2)]}))  # 1 drains
    await until(lambda: ids() == {"remote", "local-embed-0", "local-embed-2"})
    assert perf.registry.get("local-embed-2").meta["worker"] == "local-embed-2"
    assert len(app.metric_sources) == 1  # /metrics asks the pool too
    assert app.combine_metrics is not None  # and shows the other gateway processes
    await perf.close()  # closes the pool's client, so the scripted pool's side ends too
    await until(writers[0].is_closing)
    await writers[0].wait_closed()
    server.close()
    await server.wait_closed()


# -- the host itself, with real embedding workers ------------------------------------------


@pytest.fixture(scope="module")
def host() -> Iterator[PoolHost]:
    pytest.importorskip("sentence_transformers")
    from prsm.performance.embeddings._model import model_path

    batcher = BatcherSettings(max_batch_size=8, max_queue_delay=0.002)
    settings = WorkerSettings(
        count=1, threads=1, model_dir=str(model_path()), device="cpu", batcher=batcher
    )
    # the scaler's own steps an hour apart: the test moves the replicas itself
    h = PoolHost(settings, PredictiveSettings(min_replicas=1, max_replicas=2, interval=3600))
    h.start()
    yield h
    h.stop()


def _embed() -> AIRequest:
    body = orjson.dumps({"model": "all-MiniLM-L6-v2", "input": ["hello"]})
    return AIRequest(model="all-MiniLM-L6-v2", payload=JSONBody(body), kind=RequestKind.EMBEDDING)


@pytest.mark.integration
@pytest.mark.slow
async def test_the_host_scales_the_shared_pool_and_tells_every_process(host: PoolHost) -> None:
    seen: list[list[str]] = []
    told: list[tuple[dict[str, Any], int]] = []
    client = SharedPoolUpstream(
        host.path,
        timeout=60,
        on_nodes=lambda nodes: seen.append([n.id for n in nodes]),
        on_scaling=lambda snapshot, pid: told.append((snapshot, pid)),
    )
    [first] = await client.connect()
    assert seen == [[first.id]]
    await until(lambda: len(told) >= 1)  # the scaler's snapshot follows the hello
    assert told[0][1] == os.getpid() and told[0][0]["policy"] == "predictive"
    # the scaler's first step (at its start; the next is an hour away) pushed as well
    await until(lambda: len(told[-1][0]["steps"]) == 1, limit=60)
    await client.execute(first, _embed())  # through the scaler's tracker
    assert host.scaler is not None and host.scaler.tracker.service_time is not None

    assert host._loop is not None
    pushed = len(told)
    asyncio.run_coroutine_threadsafe(host.scaler.loop.step(), host._loop).result(timeout=60)
    await until(lambda: len(told) == pushed + 1)  # each step is pushed
    assert len(told[-1][0]["steps"]) == 2
    assert told[-1][0]["steps"][-1]["arrivals"] >= 1  # it saw the call above
    scraped = (await client.metrics()).decode()  # the parent's registry: scaler and batcher
    assert "prsm_scaling_decision_target{" in scraped and "prsm_batch_size_count" in scraped

    def scale(n: int) -> None:
        asyncio.run_coroutine_threadsafe(host.scaler.controller.scale_to(n), host._loop).result(
            timeout=180
        )

    await asyncio.to_thread(scale, 2)
    await until(lambda: len(seen[-1]) == 2, limit=30)
    [new] = [n for n in host.serving() if n.id != first.id]
    assert orjson.loads((await client.execute(new, _embed())).raw or b"")["data"]
    await asyncio.to_thread(scale, 1)
    await until(lambda: len(seen[-1]) == 1, limit=30)
    gone = next(n for n in (first, new) if n.id not in seen[-1])
    with pytest.raises(UpstreamUnavailableError) as info:  # a late call: retryable, elsewhere
        await client.execute(gone, _embed())
    assert info.value.retryable
    await client.aclose()
