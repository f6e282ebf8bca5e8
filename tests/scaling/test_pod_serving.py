"""Several gateway pods, one Deployment: real ``prsm-perf serve`` processes on loopback, one
(with the ``kubernetes`` section) scaling the Deployment on a fake API server through the
official client, another (with ``scaling_report``) sending it the load of the requests it
serves; and the ``scaling_report`` section refused naming its bad field."""

from __future__ import annotations

import hashlib
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

TOKEN, TOKEN_ENV = "k8s-pods-token-71d0", "PRSM_TEST_PODS_KUBE_TOKEN"
ADMIN, KEY_ENV = "admin-key-of-the-scaler-5e3a", "PRSM_TEST_PODS_ADMIN_KEY"
TENANT = "tenant-key-not-admin-0b9c"
REPORT = {"url": "http://127.0.0.1:1", "key_env": KEY_ENV, "node": "vllm"}


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"url": "http://s:8080", "node": "vllm"}, "scaling_report.key_env"),
        ({**REPORT, "url": "ftp://s"}, "scaling_report.url"),
        ({"url": "http://s", "key_env": KEY_ENV}, "scaling_report.node"),
        ({"node": "vllm"}, "scaling_report.node"),
        ({**REPORT, "interval": 0}, "scaling_report.interval"),
        ({**REPORT, "timeout": -1}, "scaling_report.timeout"),
        ({"lease": 0}, "scaling_report.lease"),
        ({"max_batch": 10, "max_events": 5}, "scaling_report.max_batch"),
        ({"max_batch": 20, "max_backlog": 10}, "scaling_report.max_backlog"),
        ({**REPORT, "every": 1}, "scaling_report.every"),
    ],
)
def test_the_section_is_validated_naming_the_bad_field(
    tmp_path: Path, section: dict[str, Any], field: str
) -> None:
    assert refused_field(tmp_path, {"scaling_report": section}) == field


@pytest.mark.parametrize(
    ("config", "env", "field"),
    [
        ({"scaling_report": {**REPORT, "node": "other"}}, {KEY_ENV: ADMIN},
         "scaling_report.node"),
        ({"scaling_report": REPORT}, {}, "scaling_report.key_env"),
        ({"scaling_report": REPORT, "orchestrator": {"auto_scaling": True},
          "kubernetes": {"deployment": "llm", "node": "vllm"}}, {KEY_ENV: ADMIN},
         "scaling_report.url"),
    ],
)  # fmt: skip
def test_the_gateway_refuses_a_report_it_cannot_send(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    config: dict[str, Any],
    env: dict[str, str],
    field: str,
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    nodes = [{"id": "vllm", "url": "http://127.0.0.1:9/v1", "models": ["m"]}]
    path = write_config(tmp_path, {"nodes": nodes, "workers": {"enabled": False}, **config})
    with pytest.raises(ConfigError) as info:
        app_from_config(load_config(path))
    assert info.value.field == field
    assert ADMIN not in str(info.value)


def _post(url: str, key: str | None) -> int:
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    body = {"pod": "p", "instance": "p/1", "node": "vllm", "seq": 1, "interval": 0.2,
            "events": [], "dropped": 0, "retries": 0}  # fmt: skip
    answer = httpx.post(f"{url}/admin/scaling/load", json=body, headers=headers, timeout=10)
    return answer.status_code


def _admin(url: str) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {ADMIN}"}
    answer = httpx.get(f"{url}/admin/scaling", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _pods(url: str) -> list[dict[str, Any]]:
    return [p for p in _admin(url)["scaling"].get("pods", []) if p["pod"] != "p"]


def _wait(condition: Any, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert condition()


@pytest.mark.integration
@pytest.mark.parametrize("workers", [1, 2])
def test_the_reporting_pods_load_scales_the_deployment(tmp_path: Path, workers: int) -> None:
    """Requests only to the reporting pod scale the Deployment the other pod scales (with one
    gateway process, and with ``serve --workers 2``, where the serving parent holds the
    scaler); the reporting pod, stopped, is lost after its lease; the key is nowhere."""
    need("kubernetes", extra="kubernetes")  # under CI=true its absence fails
    with FakeKubernetesAPI(token=TOKEN) as api:
        api.add_deployment("llm", replicas=1, namespace="serving")
        sim = start_sim("pods", "--models", "m", "--latency", "1.5", "--distribution", "fixed")
        vllm = [node("vllm", sim, ["m"])]
        try:
            scaler = start_gateway(tmp_path, {
                "nodes": vllm, "orchestrator": {"auto_scaling": True, "hedge": False},
                "scaling": {"min_replicas": 1, "max_replicas": 6, "interval": 0.5},
                "kubernetes": {"deployment": "llm", "namespace": "serving", "node": "vllm",
                               "replica_concurrency": 1, "host": api.url,
                               "token_env": TOKEN_ENV},
                "scaling_report": {"lease": 1.0},
                "gateway": {"workers": workers, "admin_key_sha256": [_sha(ADMIN)],
                            "tenants": [{"name": "t", "key_sha256": [_sha(TENANT)]}]},
            }, env={TOKEN_ENV: TOKEN})  # fmt: skip
            try:
                assert [_post(scaler.url, k) for k in (None, "wrong", TENANT)] == [401, 401, 403]
                assert _post(scaler.url, ADMIN) == (200 if workers == 1 else 202)  # to the parent
                report = {"url": scaler.url, "key_env": KEY_ENV, "node": "vllm"}
                pod = start_gateway(tmp_path, {"nodes": vllm, "scaling_report": report},
                                    env={KEY_ENV: ADMIN})  # fmt: skip
                try:
                    texts = _scale_through(pod.url, scaler.url, api)
                    pod.terminate()
                    pod_log = pod.proc.communicate(timeout=30)[0].decode()
                finally:
                    pod.stop()
                _wait(lambda: [p["state"] for p in _pods(scaler.url)] == ["lost"])
                texts.append(str(_admin(scaler.url)))
                scaler.terminate()
                scaler_log = scaler.proc.communicate(timeout=30)[0].decode()
            finally:
                scaler.stop()
        finally:
            sim.stop()
    assert "has not reported for" in scaler_log  # logged when it was lost
    for text in (*texts, pod_log, scaler_log):
        assert ADMIN not in text and TOKEN not in text


def _scale_through(pod: str, scaler: str, api: FakeKubernetesAPI) -> list[str]:
    """Load through ``pod`` only; the Deployment scaled; both pods' admin views and metrics."""
    assert six_at_once(pod) == {200}  # each held 1.5 s: one replica takes one
    _wait(lambda: api.replicas("llm", "serving") >= 2)
    _wait(lambda: sum(p["events"] for p in _pods(scaler)) >= 36)  # 12 × arrive, start, end
    view = _admin(scaler)
    assert max(s["arrivals"] for s in view["scaling"]["steps"]) >= 1  # tracked from reports
    (seen,) = _pods(scaler)
    assert seen["state"] == "reporting" and seen["node"] == "vllm" and seen["dropped"] == 0
    own = _admin(pod)
    assert own["scaling"] is None and own["report"]["sent"] >= 36
    assert own["report"]["instance"] == seen["instance"]
    metrics = [httpx.get(f"{u}/metrics", timeout=10).text for u in (pod, scaler)]
    assert 'prsm_scaling_report_events_total{outcome="sent"}' in metrics[0]
    assert 'prsm_scaling_pod_reports_total{outcome="played"}' in metrics[1]
    assert "prsm_scaling_pods_reporting 1.0" in metrics[1]
    return [str(view), str(own), *metrics]
