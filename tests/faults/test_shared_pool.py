"""Defect 6 (the pool part): ``prsm-perf serve --workers N`` with local model workers.

Every gateway process used to start its own pool (N × the workers, no batching across
them). Now the serving parent starts one pool and every gateway process reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

import httpx
import pytest
import yaml
from benchmarks._faults import descendants

from prsm.performance.serve._pool_client import SharedPoolUpstream
from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKER_MODULE = "prsm.performance.workers._server"


def _wait_ready(url: str, proc: subprocess.Popen[str], timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url}/readyz did not answer 200 within {timeout}s")


Serving = tuple[subprocess.Popen[str], str, TextIO]


@contextlib.contextmanager
def serving(tmp_path: Path, config: dict[str, Any]) -> Iterator[Serving]:
    """``prsm-perf serve --workers 2`` on ``config`` (a free port added), ready; stopped
    after. Yields the serving parent, its URL and its log."""
    port = free_port()
    path = tmp_path / "prsm.yaml"
    path.write_text(yaml.safe_dump({**config, "gateway": {"port": port}}))
    log = (tmp_path / "serve.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "prsm.performance.cli", "serve", "--config", str(path),
         "--workers", "2"],
        stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        yield proc, url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_gateway_processes_share_one_model_pool(tmp_path: Path) -> None:
    with serving(tmp_path, {"workers": {"count": 1}}) as (proc, url, log):
        # both gateway processes up: each answers /readyz on its own connection
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            gateways = [p for p, c in descendants(proc.pid).items() if "multiprocessing" in c]
            if len(gateways) == 2:
                break
            time.sleep(0.5)
        family = descendants(proc.pid)
        models = [p for p, cmd in family.items() if WORKER_MODULE in cmd]
        assert len(models) == 1, f"one model worker for two gateway processes: {family}"

        text = "How do I convert Celsius to Fahrenheit?"
        body = {"model": "all-MiniLM-L6-v2", "input": [text]}

        def one(_: int) -> list[float]:
            r = httpx.post(f"{url}/v1/embeddings", json=body, timeout=120)  # a new connection
            assert r.status_code == 200, r.text
            vector: list[float] = r.json()["data"][0]["embedding"]
            return vector

        with ThreadPoolExecutor(8) as ex:
            vectors = list(ex.map(one, range(24)))
        # the same vector whatever batch it rode in (a batch's padding moves floats ~1e-7)
        assert len(vectors[0]) == 384
        assert all(max(abs(a - b) for a, b in zip(v, vectors[0], strict=True)) < 1e-5
                   for v in vectors)  # fmt: skip

        log.seek(0)
        found = re.search(r"shared at unix:(\S+)", log.read())
        assert found, "serve names the shared pool's socket"

        async def stats() -> dict[str, object]:
            client = SharedPoolUpstream(found.group(1), timeout=30)
            nodes = await client.connect()
            assert [n.id for n in nodes] == ["local-embed-0"]
            try:
                return await client.stats()
            finally:
                await client.aclose()

        seen = asyncio.run(stats())
        assert seen["clients"] == 3  # the two gateway processes, and this test
        assert seen["calls"] == 24
        # the batcher and the workers live in the parent: each gateway process's /metrics
        # answers for them too, once per family
        scraped = httpx.get(f"{url}/metrics", timeout=30).text
        assert "prsm_workers_ready 1.0" in scraped
        sizes = re.search(r"^prsm_batch_size_count\S* (\S+)$", scraped, re.M)
        assert sizes and float(sizes.group(1)) >= 1  # batches of the 24 texts
        helps = [line.split()[2] for line in scraped.splitlines() if line.startswith("# HELP")]
        assert len(helps) == len(set(helps)) and "prsm_gateway_requests_total" in helps
    left = [p for p, c in descendants(proc.pid).items() if WORKER_MODULE in c]
    assert left == []


HELPER_ENTRY = "prsm.performance._helper_process import _main"


def test_gateway_processes_share_the_semantic_caches_models(tmp_path: Path) -> None:
    """The other per-process state of ``serve --workers N``: the semantic cache's models run
    in helpers of the serving parent, one per model, not one per gateway process."""
    from tests.gateway.procs import node, start_sim

    sim = start_sim("sem", "--models", "m")
    config = {"workers": {"enabled": False}, "nodes": [node("sim", sim, ["m"])],
              "orchestrator": {"caching_strategy": "semantic"}}  # fmt: skip
    try:
        with serving(tmp_path, config) as (proc, url, _):
            _share_the_models(proc, url)
        assert not [p for p, c in descendants(proc.pid).items() if HELPER_ENTRY in c]
    finally:
        sim.stop()


def _share_the_models(proc: subprocess.Popen[str], url: str) -> None:
    """One embedding helper, a child of the serving parent, for both gateway processes."""

    def one(i: int) -> int:  # a new connection each: both gateway processes get some
        body = {"model": "m", "temperature": 0,
                "messages": [{"role": "user", "content": f"question {i}?"}]}  # fmt: skip
        return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=180).status_code

    with ThreadPoolExecutor(4) as ex:
        assert set(ex.map(one, range(16))) == {200}
    family = descendants(proc.pid)
    gateways = {p for p, c in family.items() if "spawn_main" in c}
    helpers = {p: c for p, c in family.items() if HELPER_ENTRY in c}
    embedders = [p for p, c in helpers.items() if c.rstrip().endswith("embedder default")]
    assert len(gateways) == 2 and len(embedders) == 1, family
    parents = {int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
               for p in helpers}  # fmt: skip
    assert parents == {proc.pid}  # the serving parent's, not a gateway process's
