"""``prsm-perf serve`` scaling Ray actors (the config's ``ray`` section): a real gateway
process starts a local Ray instance sized for two cores; each replica is an actor running the
project's upstream simulator, registered as a node the gateway routes to. The gateway's load
scales the replicas up; its shutdown drains and stops them, servers included."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from prsm.performance.config import load_config
from prsm.performance.errors import ConfigError
from prsm.performance.serve import app_from_config
from tests.gateway.procs import start_gateway

from ..benchmarks.quick import need
from .helpers import refused_field, six_at_once, write_config

SIM = [sys.executable, "-m", "prsm.performance.cli", "upstream-sim", "--port", "{port}",
       "--models", "m", "--latency", "1.5", "--distribution", "fixed"]  # fmt: skip


def _ray(**extra: Any) -> dict[str, Any]:
    return {"command": SIM, "node": {"models": ["m"], "capabilities": ["chat"]},
            "replica_concurrency": 1, **extra}  # fmt: skip


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"command": ["sim", "--port", "8000"]}, "ray.command"),
        (_ray(node={"models": ["m"], "url": "http://x/v1"}), "ray.node.url"),
        (_ray(node={"capabilities": ["chat"]}), "ray.node.models"),
        (_ray(replica_concurrency=0), "ray.replica_concurrency"),
        (_ray(address="auto", num_cpus=2), "ray.num_cpus"),
        (_ray(drain_timeout=0), "ray.drain_timeout"),
        (_ray(replicas=2), "ray.replicas"),
    ],
)
def test_the_section_is_validated_naming_the_bad_field(
    tmp_path: Path, section: dict[str, Any], field: str
) -> None:
    assert refused_field(tmp_path, {"ray": section}) == field


def test_node_and_actor_options_are_checked_when_the_gateway_is_built(tmp_path: Path) -> None:
    need("ray", extra="ray")  # under CI=true its absence fails
    base = {"orchestrator": {"auto_scaling": True}, "workers": {"enabled": False}}
    bad_node = _ray(node={"models": ["m"], "max_concurrency": "many"})
    with pytest.raises(ConfigError) as info:
        app_from_config(load_config(write_config(tmp_path, {**base, "ray": bad_node})))
    assert info.value.field == "ray.node.max_concurrency"
    bad_options = _ray(actor_options={"num_cpus": 1, "cpus": 2})
    with pytest.raises(ConfigError, match="Invalid option keyword cpus") as info:
        app_from_config(load_config(write_config(tmp_path, {**base, "ray": bad_options})))
    assert info.value.field == "ray.actor_options"


def test_it_does_not_scale_beside_a_deployment(tmp_path: Path) -> None:
    config: dict[str, Any] = {"orchestrator": {"auto_scaling": True},
                              "workers": {"enabled": False}, "ray": _ray(),
                              "kubernetes": {"deployment": "llm", "node": "vllm"}}  # fmt: skip
    with pytest.raises(ConfigError, match="not both") as info:
        app_from_config(load_config(write_config(tmp_path, config)))
    assert info.value.field == "ray.command"


def _listening(url: str) -> bool:
    host, port = url.removeprefix("http://").removesuffix("/v1").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def _replicas(url: str) -> list[dict[str, Any]]:
    nodes = httpx.get(f"{url}/admin/nodes", timeout=10).json()["nodes"]
    return [n for n in nodes if n["id"].startswith("ray-replica-")]


def _until(what: str, check: Any, limit: float = 90.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_serve_scales_ray_actors_and_stops_them_on_shutdown(tmp_path: Path, workers: int) -> None:
    """One gateway process runs the actors itself; under ``serve --workers 2`` the serving
    parent does, from the load both gateway processes report, and pushes the replicas'
    nodes to both."""
    need("ray", extra="ray")
    config = {
        "gateway": {"workers": workers},
        "orchestrator": {"auto_scaling": True, "hedge": False},
        "scaling": {"min_replicas": 1, "max_replicas": 3, "interval": 0.5},
        "ray": _ray(num_cpus=2, actor_options={"num_cpus": 0.5}, ready_timeout=60),
    }
    gw = start_gateway(tmp_path, config)
    try:
        url = gw.url
        _until("the first replica serves", lambda: len(_replicas(url)) >= 1)
        assert six_at_once(url, timeout=60) == {200}  # each held 1.5 s: a replica takes one
        _until("a second replica serves", lambda: len(_replicas(url)) >= 2)
        replicas = _replicas(url)
        assert all(n["url"].startswith("http://127.0.0.1:") for n in replicas)

        def steps() -> list[dict[str, Any]]:
            got = httpx.get(f"{url}/admin/scaling", timeout=10).json()["scaling"]["steps"]
            return list(got)

        # the step is recorded once its action is done (the replica started)
        _until(
            "the step that asked for it is shown", lambda: any(s["target"] >= 2 for s in steps())
        )
        assert sum(s["arrivals"] for s in steps()) >= 1  # the replicas' requests, tracked
        assert "prsm_scaling_decision_target{" in httpx.get(f"{url}/metrics", timeout=10).text
        gw.terminate()
        out, _ = gw.proc.communicate(timeout=60)
    finally:
        gw.stop()
    assert gw.proc.returncode == 0, out.decode()[-2000:]
    assert "auto_scaling=True but no scaler" not in out.decode()
    if workers > 1:
        assert "ray scaler shared at unix:" in out.decode()
    assert not [n["url"] for n in replicas if _listening(n["url"])]  # their servers stopped
