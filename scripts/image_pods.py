"""The image run as the manifests run it, for ``scripts/image_check.py`` (stdlib only).

Each pod's container as its Deployment has it: the args it names, its config file (only the
node's URL moved to the simulator), a read-only root with ``tmpfs`` owned by the pod's user
where the pod mounts ``emptyDir``s, every capability dropped, no privilege escalation, the
admin key and its hash from the environment; on 127.0.0.1 (``PRSM_GATEWAY__HOST``/``__PORT``)
with the host's network. The scaler candidate's Kubernetes API is ``FakeKubernetesAPI``, run
from the image too (the test of the manifests moves it the same way).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from pathlib import Path

from image_http import Receiver, free_port, get, post, stream, wait_ready
from image_podman import Checks, Podman

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
NODE_URL = "http://llm:8000/v1"  # both configs' node, moved to the simulator
GATEWAY = ["serve", "--config", "/etc/prsm/reporter.yaml"]  # gateways.yaml's container args
CANDIDATE = ["serve", "--config", "/etc/prsm/candidate.yaml"]  # scalers.yaml's
GRACE = 30.0  # both Deployments' terminationGracePeriodSeconds
MODEL = "llama-3-8b"
KEY = "image-check-admin-key"
KUBE_TOKEN = "image-check-kube-token"
POD = "prsm-scalers-image-check"
LEASE = "/apis/coordination.k8s.io/v1/namespaces/serving/leases/prsm-scaler"
DEPLOYMENT = "/apis/apps/v1/namespaces/serving/deployments/llm"
FAKE_API = """import sys, time
from prsm.performance.scaling import FakeKubernetesAPI
api = FakeKubernetesAPI(token=sys.argv[1], port=int(sys.argv[2])).start()
api.add_deployment("llm", namespace="serving")
time.sleep(3600)
"""


def configs(where: Path, sim_url: str, checks: Checks) -> str:
    """Both pods' configs, moved to the simulator, in ``where``; its mount option."""
    where.mkdir(mode=0o755)
    for manifest, args in (("gateways.yaml", GATEWAY), ("scalers.yaml", CANDIDATE)):
        spec = (DEPLOY / manifest).read_text(encoding="utf-8")
        checks(f"args: [{', '.join(args)}]" in spec, f"{manifest} runs {' '.join(args)}")
        name = Path(args[-1]).name
        text = (DEPLOY / "config" / name).read_text(encoding="utf-8")
        checks(NODE_URL in text, f"{name}'s node is {NODE_URL}")
        (where / name).write_text(text.replace(NODE_URL, sim_url), encoding="utf-8")
        (where / name).chmod(0o644)
    return f"{where}:/etc/prsm:ro"


def pod_options(config: str, env: dict[str, str]) -> list[str]:
    tmpfs = [arg for d in ("/tmp", "/var/lib/prsm", "/var/cache/prsm")
             for arg in ("--tmpfs", f"{d}:rw,U")]  # fmt: skip
    return ["--read-only", *tmpfs, "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "-v", config, *env_args(env)]  # fmt: skip


def env_args(env: dict[str, str]) -> list[str]:
    return [arg for k, v in env.items() for arg in ("-e", f"{k}={v}")]


@dataclasses.dataclass
class Pods:
    """What every pod's container is run with: the image, the configs' mount, the env."""

    podman: Podman
    tag: str
    config: str
    env: dict[str, str]
    checks: Checks


def check_pods(podman: Podman, tag: str, tmp: Path, checks: Checks) -> None:
    sim_port = free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    podman.start("sim", [], tag, "upstream-sim", "--host", "127.0.0.1", "--port", str(sim_port),
                 "--models", MODEL)  # fmt: skip
    checks(wait_ready(f"{sim}/v1/models", 60), "the simulator from the image answers")
    config = configs(tmp / "config", f"{sim}/v1", checks)
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    env = {"PRSM_ADMIN_KEY": KEY, "PRSM_GATEWAY__ADMIN_KEY_SHA256": f"[{digest}]",
           "PRSM_DATA_DIR": "/var/lib/prsm", "PRSM_CACHE_DIR": "/var/cache/prsm",
           "PRSM_GATEWAY__HOST": "127.0.0.1"}  # fmt: skip
    pods = Pods(podman, tag, config, env, checks)
    receiver = Receiver()
    try:
        check_plain(pods, receiver)
        check_gateway(pods, sim, receiver)
        check_candidate(pods)
    finally:
        receiver.close()


def check_plain(pods: Pods, receiver: Receiver) -> None:
    """The image on its own: a writable root, no volumes, no data or cache directory set."""
    podman, checks, port = pods.podman, pods.checks, free_port()
    plain = {k: v for k, v in pods.env.items() if k not in ("PRSM_DATA_DIR", "PRSM_CACHE_DIR")}
    plain |= {"PRSM_GATEWAY__PORT": str(port), "PRSM_SCALING_REPORT__URL": receiver.url}
    name = podman.start("plain", ["-v", pods.config, *env_args(plain)], pods.tag, *GATEWAY)
    ready = wait_ready(f"http://127.0.0.1:{port}/readyz", 60)
    checks(ready, "the image on its own (no data-dir env, no volumes) serves",
           "" if ready else podman.logs(name))  # fmt: skip
    podman.proc("rm", "-f", name)


def check_gateway(pods: Pods, sim: str, receiver: Receiver) -> None:
    """A gateway pod serves, reports its load with the key, and drains on SIGTERM."""
    podman, checks, port = pods.podman, pods.checks, free_port()
    moved = {**pods.env, "PRSM_GATEWAY__PORT": str(port), "PRSM_SCALING_REPORT__URL": receiver.url}
    name = podman.start("gw", pod_options(pods.config, moved), pods.tag, *GATEWAY)
    gw = f"http://127.0.0.1:{port}"
    if not checks(wait_ready(f"{gw}/readyz", 60), "gateway: /readyz 200"):
        print(podman.logs(name))
        return
    pid = podman("inspect", "--format", "{{.State.Pid}}", name).strip()
    uid = next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("Uid:"))  # fmt: skip
    checks(uid == "10001", "gateway: its process runs as uid 10001", f"uid {uid}")
    checks(get(f"{gw}/healthz")[0] == 200, "gateway: /healthz 200")
    status, body = get(f"{gw}/v1/models")
    models = [m["id"] for m in json.loads(body)["data"]] if status == 200 else []
    checks(models == [MODEL], "gateway: /v1/models", f"{status} {models}")
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "image check"}]}
    status, body = post(f"{gw}/v1/chat/completions", chat)
    _, direct = post(f"{sim}/v1/chat/completions", chat)
    text = json.loads(body)["choices"][0]["message"]["content"] if status == 200 else None
    want = json.loads(direct)["choices"][0]["message"]["content"]
    checks(text == want and bool(want), "gateway: a chat completion is the simulator's", status)
    events = stream(f"{gw}/v1/chat/completions", {**chat, "stream": True})
    checks(events[-1:] == ["[DONE]"] and len(events) > 2, "gateway: a stream ends with [DONE]",
           f"{len(events)} events")  # fmt: skip
    status, metrics = get(f"{gw}/metrics")
    chats = [line for line in metrics.decode().splitlines()
             if line.startswith("prsm_gateway_requests_total{") and "chat" in line]  # fmt: skip
    served = sum(float(line.rsplit(" ", 1)[1]) for line in chats if 'status="200"' in line)
    checks(status == 200 and served == 2, "gateway: /metrics counts both chat requests",
           f"{status} {chats}")  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and receiver.finished < 2:
        time.sleep(0.2)
    checks(receiver.keys == {f"Bearer {KEY}"}, "gateway: load reports carry the admin key")
    checks(receiver.finished >= 2, "gateway: load reports count both requests", receiver.finished)
    drain(podman, name, gw, sim, checks)


def drain(podman: Podman, name: str, gw: str, sim: str, checks: Checks) -> None:
    """SIGTERM with a stream in flight: it finishes whole, then the gateway exits 0."""
    post(f"{sim}/_control", {"tokens_per_second": 4})  # a 16-token answer: 4 s
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "drain"}], "stream": True}
    got: list[list[str]] = []
    started = threading.Event()
    reader = threading.Thread(target=lambda: got.append(stream(f"{gw}/v1/chat/completions",
                                                               chat, started)))  # fmt: skip
    reader.start()
    started.wait(10)
    sent = time.monotonic()
    podman("kill", "--signal", "TERM", name)
    code = podman("wait", name, timeout=GRACE + 30).strip()
    took = time.monotonic() - sent
    reader.join(30)
    post(f"{sim}/_control", {"tokens_per_second": 0})
    events = got[0] if got else []
    checks(events[-1:] == ["[DONE]"], "gateway: on SIGTERM the stream in flight finishes whole",
           f"{len(events)} events")  # fmt: skip
    checks(code == "0" and took < GRACE, "gateway: on SIGTERM exits 0 within the grace period",
           f"exit {code} after {took:.1f} s")  # fmt: skip


def holder(kube: str) -> str | None:
    status, body = get(kube + LEASE, {"Authorization": f"Bearer {KUBE_TOKEN}"})
    return json.loads(body).get("spec", {}).get("holderIdentity") if status == 200 else None


def check_candidate(pods: Pods) -> None:
    """A scaler candidate takes the Lease, answers its probes, and hands it back on SIGTERM."""
    podman, checks, tag = pods.podman, pods.checks, pods.tag
    kube_port, port = free_port(), free_port()
    kube = f"http://127.0.0.1:{kube_port}"
    podman.start("kube", ["--entrypoint", "python"], tag, "-c", FAKE_API, KUBE_TOKEN,
                 str(kube_port))  # fmt: skip
    auth = {"Authorization": f"Bearer {KUBE_TOKEN}"}
    checks(wait_ready(kube + DEPLOYMENT, 60, auth), "FakeKubernetesAPI from the image answers")
    moved = {**pods.env, "POD_NAME": POD, "POD_IP": "127.0.0.1", "PRSM_GATEWAY__PORT": str(port),
             "PRSM_KUBERNETES__IN_CLUSTER": "false", "PRSM_KUBERNETES__HOST": kube,
             "PRSM_KUBERNETES__TOKEN_ENV": "PRSM_IMAGE_CHECK_KUBE_TOKEN",
             "PRSM_IMAGE_CHECK_KUBE_TOKEN": KUBE_TOKEN,
             "PRSM_KUBERNETES__LEADER_ELECTION__URL": f"http://${{POD_IP}}:{port}",
             "PRSM_SCALING_REPORT__URL": f"http://127.0.0.1:{port}"}  # fmt: skip
    name = podman.start("candidate", pod_options(pods.config, moved), tag, *CANDIDATE)
    url = f"http://127.0.0.1:{port}"
    if not checks(wait_ready(f"{url}/readyz", 60), "candidate: /readyz 200"):
        print(podman.logs(name))
        return
    checks(get(f"{url}/healthz")[0] == 200, "candidate: /healthz 200")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and holder(kube) != POD:
        time.sleep(0.25)
    checks(holder(kube) == POD, "candidate: takes the Lease", holder(kube))
    podman("kill", "--signal", "TERM", name)
    code = podman("wait", name, timeout=GRACE + 30).strip()
    checks(code == "0" and holder(kube) == "", "candidate: on SIGTERM hands the Lease back "
           "and exits 0", f"exit {code}, holder {holder(kube)!r}")  # fmt: skip
