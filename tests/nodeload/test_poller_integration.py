"""The poller against the real upstream simulator process on loopback: it reads the
simulator's live running and waiting counts, notices a refused port and a node that never
answers, the orchestrator's monitoring loop drives it, and a real gateway lists the result."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from prsm.performance.http._client import HttpPool, content, request_head
from prsm.performance.nodeload import HttpMetricsFetcher, NodePoller
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.routing._node import NodeSpec
from prsm.performance.routing._registry import NodeRegistry
from prsm.performance.routing._settings import BalancerSettings
from tests.conftest import free_port
from tests.gateway.procs import Proc, node, start_gateway, start_sim

pytestmark = pytest.mark.integration

BODY = b'{"model": "sim-chat", "messages": [{"role": "user", "content": "hi"}]}'


@pytest.fixture(scope="module")
def sim() -> Iterator[Proc]:
    proc = start_sim("poll", "--latency", "1.5")
    yield proc
    proc.stop()


def _poller(*nodes: NodeSpec, timeout: float = 2.0) -> NodePoller:
    settings = BalancerSettings(poll_timeout=timeout)
    return NodePoller(NodeRegistry(nodes), settings, fetcher=HttpMetricsFetcher())


async def _until(condition: Callable[[], bool], limit: float) -> None:
    """Poll ``condition`` (a real process and loop change state on their own)."""
    async with asyncio.timeout(limit):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


async def test_reads_the_simulators_live_running_and_waiting(sim: Proc) -> None:
    poller = _poller(NodeSpec("sim", models={"sim-chat"}, url=f"{sim.url}/v1", max_concurrency=8))
    pool = HttpPool(sim.url)
    head = request_head("/v1/chat/completions", f"127.0.0.1:{sim.port}")
    calls = [asyncio.create_task(pool.request(content(head, BODY))) for _ in range(4)]
    # two requests pipelined on one connection: the second waits behind the first
    raw = socket.create_connection(("127.0.0.1", sim.port))
    raw.sendall(content(head, BODY) * 2)
    try:
        await asyncio.sleep(0.3)  # the simulator has them all (each answers after 1.5 s)
        await poller.poll_once()
        entry = poller.registry.entry("sim")
        assert entry.source == "vllm", entry.poll_error
        assert (entry.metrics.running, entry.metrics.queue_depth) == (5, 1)
        assert entry.metrics.cpu == pytest.approx(5 / 8)
        assert entry.metrics.memory is None  # the simulator has no KV cache to report
        assert all(r.status == 200 for r in await asyncio.gather(*calls))
        await poller.poll_once()
        assert poller.registry.metrics("sim").running in (0, 1)  # the pipelined one may remain
    finally:
        raw.close()
        await pool.aclose()
        await poller.aclose()


async def test_a_refused_port_and_a_silent_node_are_failures() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts, never answers
    port = silent.getsockname()[1]
    refused = NodeSpec("refused", models={"m"}, url=f"http://127.0.0.1:{free_port()}/v1")
    hung = NodeSpec("hung", models={"m"}, url=f"http://127.0.0.1:{port}/v1")
    poller = _poller(refused, hung, timeout=0.3)
    try:
        t0 = time.monotonic()
        await poller.poll_once()
        assert time.monotonic() - t0 < 2.0  # bounded by the poll timeout
        entries = {e.id: e for e in poller.registry.entries()}
        assert "Connect" in (entries["refused"].poll_error or "")
        assert "no answer" in (entries["hung"].poll_error or "")
        assert entries["hung"].poll_failures == entries["refused"].poll_failures == 1
        assert entries["hung"].reported_at is None
    finally:
        silent.close()
        await poller.aclose()


async def test_the_orchestrators_monitoring_loop_polls(sim: Proc) -> None:
    perf = PerformanceOrchestrator(
        monitoring_interval=0.05,
        nodes=[NodeSpec("sim", models={"sim-chat"}, url=f"{sim.url}/v1")],
    )
    async with perf:
        await _until(lambda: perf.registry.entry("sim").source == "vllm", 10.0)
        load = perf.snapshot()["nodes"][0]["load"]
        assert (load["source"], load["state"]) == ("vllm", "fresh")
        assert load["reported"]["running"] == 0
    assert perf.poller.describe()["polling"] == []


def test_the_gateway_lists_each_nodes_polled_load(sim: Proc, tmp_path: Path) -> None:
    gone = free_port()  # a node nobody serves: its polls fail, visibly
    gw = start_gateway(
        tmp_path,
        {
            "orchestrator": {"monitoring_interval": 0.1},
            "routing": {"poll_timeout": 0.5},
            "nodes": [
                node("sim", sim, ["sim-chat"]),
                {"id": "gone", "url": f"http://127.0.0.1:{gone}/v1", "models": ["sim-chat"]},
            ],
        },
    )
    try:
        deadline = time.monotonic() + 15.0
        while True:
            listed = httpx.get(f"{gw.url}/admin/nodes", timeout=5.0).json()["nodes"]
            loads = {n["id"]: n["load"] for n in listed}
            if loads["sim"]["source"] == "vllm" and loads["gone"]["poll_failures"] > 0:
                break
            assert time.monotonic() < deadline, loads
            time.sleep(0.1)
        assert loads["sim"]["state"] == "fresh" and loads["sim"]["poll_error"] is None
        assert loads["gone"]["state"] == "none" and "Connect" in loads["gone"]["poll_error"]
        while True:  # the gauges follow at the next tick of the monitoring loop
            exposition = httpx.get(f"{gw.url}/metrics", timeout=5.0).text
            if 'prsm_node_load_signal_weight{node="sim"} 1.0' in exposition:
                break
            assert time.monotonic() < deadline, exposition
            time.sleep(0.1)
        assert 'prsm_node_load_polls_total{node="gone",outcome="error"}' in exposition
    finally:
        gw.stop()
