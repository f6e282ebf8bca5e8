"""Scaler candidates under ``serve --workers 2``: real pods on loopback, two candidates of
two gateway processes each electing a leader on a Lease of :class:`FakeKubernetesAPI`, and
one reporting pod. In each candidate only the serving parent stands for the Lease (one
elector per pod); the gateway processes of the standby answer reports with the leader's URL,
those of the leader hand them to their parent, whose scaler scales the Deployment; the
standby fetches the leader's history (the warm standby) through the leader's gateway
processes; the leader stops and hands the Lease back, the standby takes over and the
reporter's load now scales the Deployment through it."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from prsm.performance.clock import ManualClock
from prsm.performance.scaling import FakeKubernetesAPI
from prsm.performance.scaling._pods import PodLoadReceiver, ScalingReportSettings
from prsm.performance.scaling._tracker import LoadTracker
from prsm.performance.serve._pod_standby import parent_gate
from tests.conftest import free_port
from tests.gateway.procs import Proc, node, start_gateway, start_sim

from ..benchmarks.quick import need
from .helpers import six_at_once
from .test_pod_standby import ADMIN, ELECTION, KEY_ENV, KUBE, REPORT, TOKEN, TOKEN_ENV, _sha, _wait

KEY = {"authorization": f"Bearer {ADMIN}"}


def _candidate(tmp: Path, name: str, api: FakeKubernetesAPI, vllm: list[Any]) -> Proc:
    port = free_port()
    own = f"http://127.0.0.1:{port}"
    config = {
        "nodes": vllm, "workers": {"enabled": False},
        "orchestrator": {"auto_scaling": True, "hedge": False},
        "scaling": {"min_replicas": 1, "max_replicas": 6, "interval": 0.5,
                    "scale_down_window": 1.0, "predictor": {"refit_interval": 1800.0}},
        "kubernetes": {**KUBE, "host": api.url, "token_env": TOKEN_ENV,
                       "leader_election": {**ELECTION, "url": own, "warm_interval": 0.25}},
        "scaling_report": {**REPORT, "url": own, "lease": 1.0},
        "gateway": {"port": port, "workers": 2, "admin_key_sha256": [_sha(ADMIN)]},
    }  # fmt: skip
    path = tmp / f"candidate-{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {TOKEN_ENV: TOKEN, KEY_ENV: ADMIN, "POD_NAME": name}
    return Proc(["serve", "--config", str(path)], port, env)


def _admin(url: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/admin/scaling", headers=KEY, timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["scaling"])


def _leads(url: str, name: str) -> bool:
    leader = _admin(url).get("leader") or {}
    return bool(leader.get("leading")) and leader.get("identity") == name


def _holder(api: FakeKubernetesAPI) -> str:
    lease = api.lease("prsm-scaler", "serving")
    return str(lease["spec"].get("holderIdentity") or "") if lease is not None else ""


def _metric(url: str, pattern: str) -> list[float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return [float(v) for v in re.findall(rf"^{pattern} ([0-9.e+]+)$", text, re.MULTILINE)]


def _report(url: str) -> httpx.Response:
    body = {"pod": "probe", "instance": "probe/1", "node": "vllm", "seq": 1, "interval": 0.2,
            "events": [], "dropped": 0, "retries": 0}  # fmt: skip
    return httpx.post(f"{url}/admin/scaling/load", json=body, headers=KEY, timeout=10)


def test_a_gateway_process_gates_reports_by_its_parents_last_word() -> None:
    assert parent_gate(None) == ""  # not heard yet: no leader known
    assert parent_gate({"leader": {"leading": True, "leader_url": "http://a:1"}}) is None
    assert parent_gate({"leader": {"leading": False, "leader_url": "http://b:1"}}) == "http://b:1"
    assert parent_gate({"steps": []}) == ""


def test_a_report_handed_on_after_the_parent_stopped_leading_is_counted_late(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, tracker = ManualClock(), LoadTracker()
    receiver = PodLoadReceiver(tracker, ScalingReportSettings(), "vllm", clock=clock)
    report = {"pod": "p", "instance": "p/1", "node": "vllm", "seq": 1, "interval": 0.2,
              "events": [["a", None]], "dropped": 0, "retries": 0}  # fmt: skip
    leader: list[str | None] = [None]
    receiver.gate = lambda: leader[0]
    assert receiver.forwarded(report) and tracker.queued == 1
    leader[0] = "http://b:1"
    with caplog.at_level(logging.WARNING):
        assert not receiver.forwarded({**report, "seq": 2})
    assert tracker.queued == 1 and receiver.late == 1
    assert "came after this pod stopped leading" in caplog.text


@pytest.mark.integration
def test_candidates_of_several_processes_elect_one_parent_each(tmp_path: Path) -> None:
    need("kubernetes", extra="kubernetes")  # under CI=true its absence fails
    with FakeKubernetesAPI(token=TOKEN) as api:
        api.add_deployment("llm", replicas=1, namespace="serving")
        sim = start_sim("standby", "--models", "m", "--latency", "1.5", "--distribution", "fixed")
        vllm = [node("vllm", sim, ["m"])]
        procs: list[Proc] = []
        try:
            a = _candidate(tmp_path, "cand-a", api, vllm)
            procs.append(a)
            _wait(lambda: _holder(api) == "cand-a" and _leads(a.url, "cand-a"))
            b = _candidate(tmp_path, "cand-b", api, vllm)
            procs.append(b)
            _wait(lambda: (_admin(b.url).get("leader") or {}).get("leader_url") == a.url)
            # every gateway process of the standby names the leader (SO_REUSEPORT spreads
            # these over both); those of the leader hand the report to their parent
            for _ in range(6):
                refused = _report(b.url)
                assert refused.status_code == 503 and refused.json()["leader"] == a.url
                assert _report(a.url).status_code == 202
            # one elector per pod: the parent's, whatever the processes' metrics add up to
            assert _metric(b.url, "prsm_scaling_leader") == [0.0]
            assert _metric(a.url, "prsm_scaling_leader") == [1.0]
            # the warm standby: the standby's parent fetches the leader's history
            ok = 'prsm_scaling_warm_fetches_total{outcome="ok"}'
            _wait(lambda: sum(_metric(b.url, re.escape(ok))) >= 3)
            failed = 'prsm_scaling_warm_fetches_total{outcome="failed"}'
            assert sum(_metric(b.url, re.escape(failed))) == 0
            _wait(lambda: _admin(b.url)["warm"]["fetches"] >= 3)  # pushed to its processes
            history = httpx.get(f"{a.url}/admin/scaling/history?since=0", headers=KEY, timeout=10)
            assert history.status_code == 200 and history.json()["step"] == 60.0
            assert "sessions" not in history.json()  # asked for only (an older standby never)
            asked = httpx.get(f"{a.url}/admin/scaling/history?since=0&sessions=1", headers=KEY,
                              timeout=10)  # fmt: skip
            assert asked.status_code == 200 and "users" in asked.json()["sessions"]
            standby = httpx.get(f"{b.url}/admin/scaling/history", headers=KEY, timeout=10)
            assert standby.status_code == 503 and standby.json()["leader"] == a.url
            assert httpx.get(f"{a.url}/admin/scaling/history", timeout=10).status_code in (401, 403)
            report = {**REPORT, "url": b.url}  # the reporter's url is the standby
            pod = start_gateway(tmp_path, {"nodes": vllm, "scaling_report": report},
                                env={KEY_ENV: ADMIN})  # fmt: skip
            procs.append(pod)
            assert six_at_once(pod.url) == {200}  # each held 1.5 s: one replica takes one
            _wait(lambda: api.replicas("llm", "serving") >= 2)
            a.stop()  # the leader's parent hands the Lease back as it shuts down
            _wait(lambda: _holder(api) == "cand-b" and _leads(b.url, "cand-b"))
            lease = api.lease("prsm-scaler", "serving")
            assert lease is not None and lease["spec"]["leaseTransitions"] == 1
            _wait(lambda: api.replicas("llm", "serving") == 1)  # no load: let go
            assert six_at_once(pod.url) == {200}
            _wait(lambda: api.replicas("llm", "serving") >= 2)  # through the new leader
            view = _admin(b.url)
            assert max(s["arrivals"] for s in view["steps"]) >= 1
            assert view["warm"]["source"] == a.url and view["warm"]["fetches"] >= 3
            assert _report(b.url).status_code == 202
            key = httpx.get(f"{pod.url}/admin/scaling", headers=KEY, timeout=10).json()["report"]
            assert key["target"] == b.url
            b.stop()
            assert _holder(api) == ""
        finally:
            for proc in reversed(procs):
                proc.stop()
            sim.stop()
