"""``serve --workers N``: ``/metrics`` shows every gateway process, whichever one takes the
scrape (it used to answer for the taker only, so counters jumped between processes' values
and Prometheus read each jump down as a counter reset)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from prsm.performance.errors import UpstreamUnavailableError
from prsm.performance.serve._pool_client import SharedPoolUpstream
from prsm.performance.serve._process_metrics import all_processes, combine_expositions
from prsm.performance.serve._shared_pool import PoolHost
from prsm.performance.workers._protocol import pack
from tests.conftest import free_port
from tests.gateway.procs import Proc, node

from ..scaling.helpers import until

COUNTER = b"""# HELP req_total Requests.
# TYPE req_total counter
req_total{model="m"} 3.0
req_total 1.0
# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{le="0.1"} 2.0
lat_seconds_bucket{le="+Inf"} 4.0
lat_seconds_sum 0.5
lat_seconds_count 4.0
"""
GAUGE = b"""# HELP req_total Requests.
# TYPE req_total counter
req_total{model="m"} 5.0
# a note of this process's own
# HELP up Up.
# TYPE up gauge
up{} 1.0
"""


def families(text: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {
        f.name: [(dict(s.labels), s.value) for s in f.samples]
        for f in text_string_to_metric_families(text.decode())
    }


def test_each_family_once_with_every_process_labelled() -> None:
    text = combine_expositions([("gateway-0", COUNTER), ("gateway-1", GAUGE)])
    assert text.count(b"# TYPE req_total counter") == 1  # one block per family
    got = families(text)  # Prometheus' own parser accepts it
    assert got["req"] == [
        ({"process": "gateway-0", "model": "m"}, 3.0),
        ({"process": "gateway-0"}, 1.0),
        ({"process": "gateway-1", "model": "m"}, 5.0),
    ]
    assert ({"process": "gateway-0", "le": "+Inf"}, 4.0) in got["lat_seconds"]
    assert got["up"] == [({"process": "gateway-1"}, 1.0)]
    assert b"a note" not in text
    assert combine_expositions([]) == b""


async def test_a_scrape_that_cannot_reach_the_others_still_serves_its_own() -> None:
    async def lost() -> tuple[list[tuple[str, bytes]], list[str]]:
        raise UpstreamUnavailableError("pool", "gone", status=503)

    async def late() -> tuple[list[tuple[str, bytes]], list[str]]:
        return [("gateway-1", GAUGE)], ["gateway-2"]

    alone = await all_processes("gateway-0", lost)(COUNTER)
    assert families(alone)["req"][0] == ({"process": "gateway-0", "model": "m"}, 3.0)
    assert b"# the other gateway processes' metrics did not come" in alone
    some = await all_processes("gateway-0", late)(COUNTER)
    assert b"# gateway process(es) that did not answer: gateway-2" in some
    assert len(families(some)["req"]) == 3


async def test_the_parent_collects_the_others_and_names_a_silent_one() -> None:
    host = PoolHost(None, collect_timeout=0.3)
    host.start()
    try:
        links = [
            SharedPoolUpstream(
                host.path, timeout=10, instance=f"gateway-{k}", on_collect=f"up {k}.0\n".encode
            )
            for k in range(2)
        ]
        for link in links:
            await link.connect()
        _, silent = await asyncio.open_unix_connection(host.path)  # never answers collect
        silent.write(pack({"op": "hello", "instance": "gateway-2"}))
        await until(lambda: len(host._names) == 3)
        peers, missing = await links[0].peers()
        assert peers == [("gateway-1", b"up 1.0\n")] and missing == ["gateway-2"]
        assert not host._collects  # nothing left waiting
        silent.close()
        await until(lambda: len(host._names) == 2)
        assert await links[1].peers() == ([("gateway-0", b"up 0.0\n")], [])
        for link in links:
            await link.aclose()
    finally:
        host.stop()


@pytest.mark.integration
def test_every_scrape_shows_every_process(tmp_path: Path) -> None:
    sim_port, port = free_port(), free_port()
    sim = Proc(["upstream-sim", "--port", str(sim_port), "--models", "sim-chat"], sim_port)
    spec = node("a", sim, ["sim-chat"])
    config = {"nodes": [spec], "gateway": {"port": port}, "workers": {"enabled": False}}
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(config))
    gw = Proc(["serve", "--config", str(path), "--workers", "2"], port,
              {"PRSM_DATA_DIR": str(tmp_path / "data")})  # fmt: skip
    try:
        body = {"model": "sim-chat", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(20):  # a new connection each: the kernel spreads them
            assert httpx.post(f"{gw.url}/v1/chat/completions", json=body).status_code == 200
        for _ in range(6):  # whichever process takes it, a scrape counts all 20
            got = families(httpx.get(f"{gw.url}/metrics").content)
            both = {labels["process"] for labels, _ in got["prsm_breaker_state"]}
            assert both == {"gateway-0", "gateway-1"}  # a gauge every process has
            served = got["prsm_request_duration_seconds"]
            assert sum(v for labels, v in served if labels.get("le") == "+Inf") == 20
    finally:
        gw.stop()
        sim.stop()
