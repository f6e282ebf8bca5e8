"""A standby for the scaler pod: real ``prsm-perf serve`` pods on loopback, two scaler
candidates electing a leader on a Lease of :class:`FakeKubernetesAPI` (through the official
client) and one reporting pod; the reporter's load scales the Deployment through the leader
(its reports sent first to the standby, which names the leader); the leader is killed; the
standby takes the Lease once it has gone unrenewed for its duration and the reporter's load
now scales the Deployment through it; stopped, it hands the Lease back. And the candidate's
configuration refused naming the bad field."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from prsm.performance.config import load_config
from prsm.performance.errors import ConfigError
from prsm.performance.scaling import FakeKubernetesAPI
from prsm.performance.serve import app_from_config
from tests.conftest import free_port
from tests.gateway.procs import Proc, node, start_gateway, start_sim

from ..benchmarks.quick import need
from .helpers import refused_field, six_at_once, write_config

TOKEN, TOKEN_ENV = "k8s-standby-token-3f2a", "PRSM_TEST_STANDBY_KUBE_TOKEN"
ADMIN, KEY_ENV = "admin-key-of-the-scalers-c41d", "PRSM_TEST_STANDBY_ADMIN_KEY"
ELECTION = {"lease": "prsm-scaler", "url": "http://127.0.0.1:1", "lease_duration": 3,
            "renew_deadline": 2.0, "retry_period": 0.25}  # fmt: skip
KUBE = {"deployment": "llm", "namespace": "serving", "node": "vllm", "replica_concurrency": 1,
        "timeout": 1.0, "leader_election": ELECTION}  # fmt: skip
REPORT = {"url": "http://127.0.0.1:1", "key_env": KEY_ENV, "node": "vllm"}


@pytest.mark.parametrize(
    ("kube", "field"),
    [
        ({**KUBE, "timeout": 1.5}, "kubernetes.timeout"),
        ({**KUBE, "leader_election": {**ELECTION, "renew_deadline": 3.0}},
         "kubernetes.leader_election.renew_deadline"),
        ({**KUBE, "leader_election": {**ELECTION, "retry_period": 2.0}},
         "kubernetes.leader_election.retry_period"),
        ({**KUBE, "leader_election": {**ELECTION, "url": ""}}, "kubernetes.leader_election.url"),
        ({**KUBE, "leader_election": {**ELECTION, "lease_duration": 2.5}},
         "kubernetes.leader_election.lease_duration"),
        ({"leader_election": ELECTION}, "kubernetes.leader_election.lease"),
        ({**KUBE, "leader_election": {**ELECTION, "warm_interval": -1}},
         "kubernetes.leader_election.warm_interval"),
    ],
)  # fmt: skip
def test_the_election_settings_name_the_bad_field(
    tmp_path: Path, kube: dict[str, Any], field: str
) -> None:
    assert refused_field(tmp_path, {"kubernetes": kube}) == field


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "scaling_report.url"),
        ({"scaling_report": {**REPORT, "node": "other"}}, "scaling_report.node"),
        ({"scaling_report": REPORT, "kubernetes": {**KUBE, "leader_election": {
            **ELECTION, "url": "http://${PRSM_TEST_UNSET_IP}:8080"}}},
         "kubernetes.leader_election.url"),
        ({"scaling_report": REPORT, "scaling": {"interval": 0.5}}, "scaling.interval"),
        ({"scaling_report": REPORT, "scaling": {  # a day of the floor's errors rebuilt
            "interval": 5.0, "session_wait_probability": 0.1, "session_error_quantile": 0.9,
            "session_error_span": 86400.0}}, "scaling.interval"),
    ],
)  # fmt: skip
def test_a_candidate_that_cannot_report_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: dict[str, Any], field: str
) -> None:
    monkeypatch.setenv(KEY_ENV, ADMIN)
    monkeypatch.delenv("PRSM_TEST_UNSET_IP", raising=False)
    nodes = [{"id": "vllm", "url": "http://127.0.0.1:9/v1", "models": ["m"]},
             {"id": "other", "url": "http://127.0.0.1:9/v1", "models": ["m"]}]  # fmt: skip
    body = {"nodes": nodes, "workers": {"enabled": False}, "orchestrator": {"auto_scaling": True},
            "kubernetes": KUBE, **config}  # fmt: skip
    with pytest.raises(ConfigError) as info:
        app_from_config(load_config(write_config(tmp_path, body)))
    assert info.value.field == field


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _candidate(tmp: Path, name: str, api: FakeKubernetesAPI, vllm: list[Any]) -> Proc:
    port = free_port()
    own = f"http://127.0.0.1:{port}"
    config = {
        "nodes": vllm, "workers": {"enabled": False},
        "orchestrator": {"auto_scaling": True, "hedge": False},
        "scaling": {"min_replicas": 1, "max_replicas": 6, "interval": 0.5,
                    "scale_down_window": 1.0, "predictor": {"refit_interval": 1800.0}},
        "kubernetes": {**KUBE, "host": api.url, "token_env": TOKEN_ENV,
                       "leader_election": {**ELECTION, "url": own}},
        "scaling_report": {**REPORT, "url": own, "lease": 1.0},
        "gateway": {"port": port, "admin_key_sha256": [_sha(ADMIN)]},
    }  # fmt: skip
    path = tmp / f"candidate-{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {TOKEN_ENV: TOKEN, KEY_ENV: ADMIN, "POD_NAME": name}
    return Proc(["serve", "--config", str(path)], port, env)


def _admin(url: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/admin/scaling", headers={"authorization": f"Bearer {ADMIN}"},
                       timeout=10)  # fmt: skip
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["scaling"])


def _events(url: str) -> int:
    """The load events the candidate at ``url`` has played from reports."""
    return sum(int(p["events"]) for p in _admin(url)["pods"])


def _wait(condition: Any, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert condition()


def _spec(api: FakeKubernetesAPI) -> dict[str, Any]:
    lease = api.lease("prsm-scaler", "serving")
    return dict(lease["spec"]) if lease is not None else {}


def _wall(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp).timestamp()


@pytest.mark.integration
def test_the_standby_takes_over_and_the_reporters_load_scales_through_it(tmp_path: Path) -> None:
    need("kubernetes", extra="kubernetes")  # under CI=true its absence fails
    with FakeKubernetesAPI(token=TOKEN) as api:
        api.add_deployment("llm", replicas=1, namespace="serving")
        sim = start_sim("standby", "--models", "m", "--latency", "1.5", "--distribution", "fixed")
        vllm = [node("vllm", sim, ["m"])]
        procs: list[Proc] = []
        try:
            a = _candidate(tmp_path, "cand-a", api, vllm)
            procs.append(a)
            _wait(lambda: _spec(api).get("holderIdentity") == "cand-a")
            b = _candidate(tmp_path, "cand-b", api, vllm)
            procs.append(b)
            _wait(lambda: _admin(b.url)["leader"]["holder"] == "cand-a")
            assert _admin(b.url)["leader"]["leader_url"] == a.url
            # the reporter's url is the standby: it names the leader, and reports go there
            report = {**REPORT, "url": b.url}
            pod = start_gateway(tmp_path, {"nodes": vllm, "scaling_report": report},
                                env={KEY_ENV: ADMIN})  # fmt: skip
            procs.append(pod)
            assert six_at_once(pod.url) == {200}  # each held 1.5 s: one replica takes one
            _wait(lambda: api.replicas("llm", "serving") >= 2)
            _wait(lambda: _events(a.url) >= 36)  # 12 × arrive, start, end (from the reporter)
            view = _admin(a.url)
            assert view["leader"]["leading"] and view["leader"]["identity"] == "cand-a"
            key = {"authorization": f"Bearer {ADMIN}"}
            own = httpx.get(f"{pod.url}/admin/scaling", headers=key, timeout=10).json()["report"]
            assert own["target"] == a.url and own["redirects"] >= 1
            last_renewal = _wall(_spec(api)["renewTime"])
            a.kill()  # no release: the Lease must expire
            last_renewal = max(last_renewal, _wall(_spec(api)["renewTime"]))
            _wait(lambda: _spec(api).get("holderIdentity") == "cand-b")
            spec = _spec(api)
            took = _wall(spec["acquireTime"]) - last_renewal
            duration = ELECTION["lease_duration"]
            assert isinstance(duration, int)
            # never taken before the lease expired (how soon after: test_election.py and
            # test_elector.py on a manual clock; this machine's load only delays it)
            assert took >= duration, took
            assert spec["leaseTransitions"] == 1
            _wait(lambda: _admin(b.url)["leader"]["leading"] and _admin(b.url)["steps"])
            held = _admin(b.url)["steps"][0]  # the replicas held through its scale-down window
            assert held["target"] >= held["ready"] + held["starting"]
            _wait(lambda: api.replicas("llm", "serving") == 1)  # then, with no load, let go
            assert six_at_once(pod.url) == {200}
            _wait(lambda: api.replicas("llm", "serving") >= 2)
            _wait(lambda: _events(b.url) >= 36)
            view = _admin(b.url)
            assert max(s["arrivals"] for s in view["steps"]) >= 1
            metrics = httpx.get(f"{b.url}/metrics", timeout=10).text
            assert "prsm_scaling_leader 1.0" in metrics
            assert 'prsm_scaling_leader_transitions_total{to="leader"} 1.0' in metrics
            b.stop()  # a leader that shuts down hands the Lease back
            assert _spec(api)["holderIdentity"] == "" and _spec(api)["leaseTransitions"] == 1
        finally:
            for proc in reversed(procs):
                proc.stop()
            sim.stop()
