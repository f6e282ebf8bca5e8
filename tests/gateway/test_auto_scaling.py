"""``orchestrator.auto_scaling: true`` on ``prsm-perf serve``: the predictive scaler runs over
the gateway's own local workers (a real worker process started by the scaler, registered as a
node), fed by the embedding requests, and ``/admin/scaling`` shows its steps."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .procs import start_gateway
from .test_default_serve import wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "all-MiniLM-L6-v2"


def _until(check: Any, what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.25)


def test_the_gateway_scales_its_local_workers(tmp_path: Path) -> None:
    config = {
        "orchestrator": {"auto_scaling": True},
        "workers": {"count": 1},
        # the floor is two replicas: the first step must start a second worker
        "scaling": {"min_replicas": 2, "max_replicas": 2, "interval": 0.5},
    }
    gw = start_gateway(tmp_path, config)
    try:
        wait_ready(gw.url)

        def local_nodes() -> list[str]:
            nodes = httpx.get(f"{gw.url}/admin/nodes", timeout=5).json()["nodes"]
            return [n["id"] for n in nodes if n["state"] == "active"]

        assert (
            len(_until(lambda: len(local_nodes()) >= 2 and local_nodes(), "a second worker")) == 2
        )
        for i in range(6):
            reply = httpx.post(f"{gw.url}/v1/embeddings",
                               json={"model": MODEL, "input": f"text {i}"}, timeout=60)  # fmt: skip
            assert reply.status_code == 200, reply.text

        def scaling() -> dict[str, Any]:
            r = httpx.get(f"{gw.url}/admin/scaling", timeout=5)
            assert r.status_code == 200, r.text
            return dict(r.json()["scaling"])

        seen = _until(lambda: sum(s["arrivals"] for s in scaling()["steps"]) >= 6 and scaling(),
                      "the requests reaching the scaler's tracker")  # fmt: skip
        assert seen["policy"] == "predictive" and seen["running"] is True
        assert seen["steps"][-1]["ready"] == 2 and seen["steps"][-1]["target"] == 2
        up = [a for a in seen["actions"] if a["action"] == "scale_up"]
        assert up and up[0]["ok"] is True
        metrics = httpx.get(f"{gw.url}/metrics", timeout=5).text
        assert 'prsm_scaling_ready_replicas{deployment="default"} 2.0' in metrics
    finally:
        gw.stop()


def test_scaling_route_says_when_auto_scaling_is_off(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path, {})
    try:
        r = httpx.get(f"{gw.url}/admin/scaling", timeout=5)
        assert r.status_code == 404 and "auto-scaling is off" in r.json()["error"]["message"]
    finally:
        gw.stop()
