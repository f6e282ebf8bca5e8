"""``prsm-perf serve`` scaling a Kubernetes Deployment (the config's ``kubernetes`` section):
a real gateway process, its node a simulator, the Deployment on a fake API server that
implements the ``scale`` subresource's contract, reached through the official client."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from prsm.performance.config import load_config
from prsm.performance.errors import ConfigError
from prsm.performance.scaling import FakeKubernetesAPI
from prsm.performance.serve import app_from_config
from tests.gateway.procs import node, start_gateway, start_sim

from ..benchmarks.quick import need
from .helpers import refused_field, six_at_once, write_config

need("kubernetes", extra="kubernetes")  # under CI=true its absence fails

TOKEN = "k8s-test-token-4b1f"
TOKEN_ENV = "PRSM_TEST_KUBE_TOKEN"


def _kube(api_url: str = "http://127.0.0.1:1", **extra: Any) -> dict[str, Any]:
    return {"deployment": "llm", "namespace": "serving", "node": "vllm",
            "replica_concurrency": 1, "host": api_url, "token_env": TOKEN_ENV,
            **extra}  # fmt: skip


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"deployment": "llm"}, "kubernetes.node"),
        ({**_kube(), "replica_concurrency": 0}, "kubernetes.replica_concurrency"),
        ({"deployment": "llm", "node": "vllm", "token_env": TOKEN_ENV}, "kubernetes.token_env"),
        ({**_kube(), "in_cluster": True}, "kubernetes.in_cluster"),
        ({**_kube(), "timeout": -1}, "kubernetes.timeout"),
        ({**_kube(), "replicas": 3}, "kubernetes.replicas"),
    ],
)
def test_the_section_is_validated_naming_the_bad_field(
    tmp_path: Path, section: dict[str, Any], field: str
) -> None:
    assert refused_field(tmp_path, {"kubernetes": section}) == field


def test_its_node_must_be_configured(tmp_path: Path) -> None:
    config = {"orchestrator": {"auto_scaling": True}, "workers": {"enabled": False},
              "kubernetes": _kube()}  # fmt: skip
    with pytest.raises(ConfigError, match="no configured node 'vllm'") as info:
        app_from_config(load_config(write_config(tmp_path, config)))
    assert info.value.field == "kubernetes.node"


@pytest.mark.integration
@pytest.mark.parametrize("workers", [1, 2])
def test_serve_scales_the_deployment_from_its_nodes_load(tmp_path: Path, workers: int) -> None:
    """One gateway process scales the Deployment itself; under ``serve --workers 2`` the
    serving parent does, from the load both gateway processes report."""
    with FakeKubernetesAPI(token=TOKEN) as api:  # pods ready at once
        api.add_deployment("llm", replicas=1, namespace="serving")
        sim = start_sim("pods", "--models", "m", "--latency", "1.5", "--distribution", "fixed")
        try:
            config = {
                "nodes": [node("vllm", sim, ["m"])],
                "orchestrator": {"auto_scaling": True, "hedge": False},
                "scaling": {"min_replicas": 1, "max_replicas": 6, "interval": 0.5},
                "kubernetes": _kube(api.url),
                "gateway": {"workers": workers},
            }
            gw = start_gateway(tmp_path, config, env={TOKEN_ENV: TOKEN})
            try:
                scaling = _load_and_check(gw.url, api)
                gw.terminate()
                out, _ = gw.proc.communicate(timeout=30)
            finally:
                gw.stop()
            log = out.decode()
            assert "auto_scaling=True but no scaler" not in log
        finally:
            sim.stop()
    assert TOKEN not in log  # the token never leaves the process
    if workers > 1:  # each gateway process shows the parent's scaler
        assert scaling["scaled_by"].startswith("the serving parent (pid ")
        assert "kubernetes scaler shared at unix:" in log


def _load_and_check(url: str, api: FakeKubernetesAPI) -> dict[str, Any]:
    assert six_at_once(url) == {200}  # each held 1.5 s: one pod takes one
    deadline = time.monotonic() + 30
    while api.replicas("llm", "serving") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert api.replicas("llm", "serving") >= 2, "the Deployment was scaled up"
    assert any(m == "PATCH" and p.endswith("/deployments/llm/scale") for m, p, _ in api.requests)
    scaling = httpx.get(f"{url}/admin/scaling", timeout=10).json()["scaling"]
    assert max(s["arrivals"] for s in scaling["steps"]) >= 1  # the node's requests, tracked
    assert max(s["target"] for s in scaling["steps"]) >= 2
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert "prsm_scaling_decision_target{" in metrics
    assert TOKEN not in metrics and TOKEN not in str(scaling)
    return dict(scaling)
