"""Local workers report their load: each ready worker's process cpu and memory (psutil) and
its batcher's queue, as the node poller's local source."""

from __future__ import annotations

import asyncio
import os

import pytest

from prsm.performance.batching import BatcherSettings
from prsm.performance.clock import ManualClock
from prsm.performance.errors import WorkerError
from prsm.performance.workers import LocalModelUpstream, LocalWorkerPool, WorkerSettings
from prsm.performance.workers._load import ProcessLoad


def test_process_load_skips_the_first_cpu_reading_and_forgets_gone_processes() -> None:
    load = ProcessLoad()
    cpu, memory = load.read(os.getpid(), cores=1)
    assert cpu is None  # no interval behind a first reading: not reported, not 0
    assert memory is not None and 0.0 < memory < 1.0
    sum(i * i for i in range(200_000))  # some cpu time to measure
    cpu, _ = load.read(os.getpid(), cores=1)
    assert cpu is not None and 0.0 <= cpu <= 1.0
    assert load.read(2**22 + 12345, cores=1) == (None, None)  # no such process
    load.keep(set())
    assert load.read(os.getpid(), cores=1)[0] is None  # forgotten: a first reading again


async def test_ready_workers_report_their_batchers_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = WorkerSettings(
        count=1, device="cpu", batcher=BatcherSettings(max_batch_size=4, max_concurrent_batches=1)
    )
    pool = LocalWorkerPool(settings)
    upstream = LocalModelUpstream(pool, clock=ManualClock())
    assert upstream.node_metrics() == {}  # nothing ready: nothing reported
    worker = pool.workers[0]
    worker.state, worker.pid = "ready", os.getpid()  # this process stands in for the worker
    release = asyncio.Event()

    async def held_embed(texts: list[str]) -> object:  # the batch slot stays busy
        await release.wait()
        raise WorkerError(worker.id, "test over")

    monkeypatch.setattr(worker, "embed", held_embed)
    batcher = upstream.batchers["cpu"]
    calls = [asyncio.create_task(batcher.submit_many([f"t{i}"] * 3)) for i in range(3)]
    try:
        for _ in range(5):
            await asyncio.sleep(0)  # the first batch runs (held); the rest wait
        first = upstream.node_metrics()
        assert list(first) == [worker.id]
        assert first[worker.id].queue_depth == batcher.queue_depth > 0
        assert first[worker.id].cpu is None and (first[worker.id].memory or 0) > 0
        assert upstream.node_metrics()[worker.id].cpu is not None
        worker.state = "lost"
        assert upstream.node_metrics() == {}  # a lost worker reports nothing: its reading ages
    finally:
        release.set()
        await asyncio.gather(*calls, return_exceptions=True)
        await upstream.aclose()
