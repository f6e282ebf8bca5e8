"""Build the container image of ``deploy/kubernetes/Dockerfile`` with podman and check it.

``python3 scripts/image_check.py [--base IMAGE] [--runtime runc] [--tag TAG]`` (stdlib
only; exits 0 when every check passes, 1 naming each one that failed, 2 without podman):

- builds the image (``--base`` goes to ``--build-arg PYTHON_IMAGE``; without it, the
  Dockerfile's own base; ``scripts/image_base.py`` builds a local one), host network, nice 19;
- the image: user ``10001:10001``, entrypoint ``prsm-perf``, port 8080, ``sleep`` on ``PATH``
  (the pods' ``preStop``), every installed distribution at ``uv.lock``'s version (none of the
  build tools or what they pulled in) and ``pip check`` clean;
- runs ``prsm-perf upstream-sim`` from the image and the gateway as ``gateways.yaml`` runs it:
  ``serve --config /etc/prsm/reporter.yaml`` (the file with only its node's URL moved to the
  simulator), a read-only root with ``tmpfs`` where the pod has ``emptyDir``s, all
  capabilities dropped, no privilege escalation, the admin key and its hash from the
  environment, on 127.0.0.1 (``PRSM_GATEWAY__HOST``/``__PORT``) with its load reports sent
  to a receiver here; then checks that it runs as uid 10001, ``/healthz`` and ``/readyz``
  answer 200, ``/v1/models``, a chat completion and a stream give the simulator's answers,
  ``/metrics`` counts them, a load report with the key arrives, and on SIGTERM a stream in
  flight finishes whole and the gateway exits 0 within the pods' 30 s grace period.

Podman's default limits of open files and processes need a privilege a container host may
not grant: the containers get this process's open-files limit and 4096 processes. On a host
with cgroup v1 (or a hybrid hierarchy) crun refuses to start containers: give
``--runtime runc``.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

from image_http import Receiver, free_port, get, post, stream, wait_ready

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = "deploy/kubernetes/Dockerfile"
MANIFEST = ROOT / "deploy/kubernetes/gateways.yaml"
REPORTER = ROOT / "deploy/kubernetes/config/reporter.yaml"
NODE_URL = "http://llm:8000/v1"  # the reporter config's node, moved to the simulator
ARGS = ["serve", "--config", "/etc/prsm/reporter.yaml"]  # gateways.yaml's container args
GRACE = 30.0  # gateways.yaml's terminationGracePeriodSeconds
MODEL = "llama-3-8b"
KEY = "image-check-admin-key"
NAME = "prsm-image-check"
BASE_DISTS = {"pip", "setuptools", "wheel", "prsm-performance"}  # the base's, and ours


class Checks:
    """Each check's outcome, printed as it comes; the failures kept for the exit status."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def __call__(self, ok: bool, what: str, detail: object = "") -> bool:
        print(f"{'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail else ""), flush=True)
        if not ok:
            self.failed.append(what)
        return ok


class Podman:
    def __init__(self, runtime: str | None) -> None:
        self.base = ["podman"] + (["--runtime", runtime] if runtime else [])
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.limits = ["--ulimit", f"nofile={soft}:{hard}", "--ulimit", "nproc=4096:4096"]

    def proc(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [*self.base, *args]
        return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        done = self.proc(*args, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args[:2])} failed: {done.stderr.strip()}")
        return done.stdout

    def run(self, image: str, *args: str, entrypoint: str | None = None) -> str:
        ep = ["--entrypoint", entrypoint] if entrypoint else []
        return self("run", "--rm", "--network", "host", *self.limits, *ep, image, *args)


def logs(podman: Podman, which: str = "gw") -> str:
    """A container's last output (the gateway logs to stderr)."""
    done = podman.proc("logs", f"{NAME}-{which}", timeout=30)
    return (done.stdout + done.stderr)[-3000:]


def locked_versions() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    return {p["name"]: p["version"] for p in lock["package"] if "version" in p}


def check_image(podman: Podman, tag: str, checks: Checks) -> None:
    config = json.loads(podman("image", "inspect", tag))[0]["Config"]
    checks(config.get("User") == "10001:10001", "runs as 10001:10001", config.get("User"))
    checks(config.get("Entrypoint") == ["prsm-perf"], "entrypoint prsm-perf")
    checks("8080/tcp" in (config.get("ExposedPorts") or {}), "exposes 8080")
    checks(podman.run(tag, "-c", "sleep 0 && echo yes", entrypoint="sh").strip() == "yes",
           "sleep on PATH (preStop)")  # fmt: skip
    frozen = podman.run(tag, "-m", "pip", "list", "--format=json", entrypoint="python")
    locked = locked_versions()
    off = sorted(f"{d['name']}=={d['version']} (lock: {locked.get(d['name'].lower())})"
                 for d in json.loads(frozen)
                 if d["name"].lower() not in BASE_DISTS
                 and locked.get(d["name"].lower().replace("_", "-")) != d["version"])  # fmt: skip
    checks(not off, "every installed distribution at uv.lock's version", ", ".join(off))
    piped = podman.proc("run", "--rm", *podman.limits, "--entrypoint", "python", tag, "-m", "pip",
                        "check")  # fmt: skip
    checks(piped.returncode == 0, "pip check", piped.stdout.strip())


def reporter_config(where: Path, sim_url: str, checks: Checks) -> None:
    text = REPORTER.read_text(encoding="utf-8")
    manifest = MANIFEST.read_text(encoding="utf-8")
    checks(NODE_URL in text, f"reporter.yaml's node is {NODE_URL}")
    checks(f"args: [{', '.join(ARGS)}]" in manifest, "gateways.yaml runs " + " ".join(ARGS))
    where.mkdir(mode=0o755)
    (where / "reporter.yaml").write_text(text.replace(NODE_URL, sim_url), encoding="utf-8")
    (where / "reporter.yaml").chmod(0o644)


def check_gateway(podman: Podman, tag: str, tmp: Path, checks: Checks) -> None:
    sim_port, gw_port = free_port(), free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    podman("run", "-d", "--name", f"{NAME}-sim", "--network", "host", *podman.limits, tag,
           "upstream-sim", "--host", "127.0.0.1", "--port", str(sim_port),
           "--models", MODEL)  # fmt: skip
    checks(wait_ready(f"{sim}/v1/models", 60), "simulator from the image answers")
    reporter_config(tmp / "config", f"{sim}/v1", checks)
    receiver = Receiver()
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    env = {"PRSM_ADMIN_KEY": KEY, "PRSM_GATEWAY__ADMIN_KEY_SHA256": f"[{digest}]",
           "PRSM_DATA_DIR": "/var/lib/prsm", "PRSM_CACHE_DIR": "/var/cache/prsm",
           "PRSM_GATEWAY__HOST": "127.0.0.1", "PRSM_GATEWAY__PORT": str(gw_port),
           "PRSM_SCALING_REPORT__URL": receiver.url}  # fmt: skip
    config = f"{tmp / 'config'}:/etc/prsm:ro"
    check_plain(podman, tag, config, env, checks)
    tmpfs = [arg for d in ("/tmp", "/var/lib/prsm", "/var/cache/prsm")
             for arg in ("--tmpfs", f"{d}:rw,U")]  # emptyDirs the pod user owns  # fmt: skip
    podman("run", "-d", "--name", f"{NAME}-gw", "--network", "host", *podman.limits,
           "--read-only", *tmpfs, "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
           "-v", config, *env_args(env), tag, *ARGS)  # fmt: skip
    gw = f"http://127.0.0.1:{gw_port}"
    try:
        if not checks(wait_ready(f"{gw}/readyz", 60), "/readyz 200"):
            print(logs(podman))
            return
        requests(podman, gw, sim, receiver, checks)
        drain(podman, gw, sim, checks)
    finally:
        receiver.close()


def env_args(env: dict[str, str]) -> list[str]:
    return [arg for k, v in env.items() for arg in ("-e", f"{k}={v}")]


def check_plain(podman: Podman, tag: str, config: str, env: dict[str, str], checks: Checks) -> None:
    """The image on its own: a writable root, no volumes, no data or cache directory set."""
    port = free_port()
    plain = {k: v for k, v in env.items() if k not in ("PRSM_DATA_DIR", "PRSM_CACHE_DIR")}
    plain["PRSM_GATEWAY__PORT"] = str(port)
    podman("run", "-d", "--name", f"{NAME}-plain", "--network", "host", *podman.limits,
           "-v", config, *env_args(plain), tag, *ARGS)  # fmt: skip
    ready = wait_ready(f"http://127.0.0.1:{port}/readyz", 60)
    checks(ready, "the image on its own (no data-dir env, no volumes) serves",
           "" if ready else logs(podman, "plain"))  # fmt: skip
    podman("rm", "-f", f"{NAME}-plain", check=False)


def requests(podman: Podman, gw: str, sim: str, receiver: Receiver, checks: Checks) -> None:
    pid = podman("inspect", "--format", "{{.State.Pid}}", f"{NAME}-gw").strip()
    uid = next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("Uid:"))  # fmt: skip
    checks(uid == "10001", "the gateway's process runs as uid 10001", f"uid {uid}")
    checks(get(f"{gw}/healthz")[0] == 200, "/healthz 200")
    status, body = get(f"{gw}/v1/models")
    models = [m["id"] for m in json.loads(body)["data"]] if status == 200 else []
    checks(models == [MODEL], "/v1/models", f"{status} {models}")
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "image check"}]}
    status, body = post(f"{gw}/v1/chat/completions", chat)
    _, direct = post(f"{sim}/v1/chat/completions", chat)
    text = json.loads(body)["choices"][0]["message"]["content"] if status == 200 else None
    want = json.loads(direct)["choices"][0]["message"]["content"]
    checks(text == want and bool(want), "chat completion: the simulator's answer", status)
    events = stream(f"{gw}/v1/chat/completions", {**chat, "stream": True})
    checks(events[-1:] == ["[DONE]"] and len(events) > 2, "chat stream ends with [DONE]",
           f"{len(events)} events")  # fmt: skip
    status, metrics = get(f"{gw}/metrics")
    checks(status == 200 and b"prsm_scaling_report_events_total" in metrics, "/metrics", status)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and receiver.finished < 2:
        time.sleep(0.2)
    checks(receiver.keys == {f"Bearer {KEY}"}, "load reports carry the admin key")
    checks(receiver.finished >= 2, "load reports count both requests", receiver.finished)


def drain(podman: Podman, gw: str, sim: str, checks: Checks) -> None:
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
    podman("kill", "--signal", "TERM", f"{NAME}-gw")
    code = podman("wait", f"{NAME}-gw", timeout=GRACE + 30).strip()
    took = time.monotonic() - sent
    reader.join(30)
    events = got[0] if got else []
    checks(events[-1:] == ["[DONE]"], "SIGTERM: the stream in flight finishes whole",
           f"{len(events)} events")  # fmt: skip
    checks(code == "0" and took < GRACE, "SIGTERM: exits 0 within the grace period",
           f"exit {code} after {took:.1f} s")  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="the base image (build-arg PYTHON_IMAGE)")
    parser.add_argument("--runtime", help="podman's OCI runtime (runc on cgroup v1 hosts)")
    parser.add_argument("--tag", default="localhost/prsm-performance:check")
    args = parser.parse_args(argv)
    if not shutil.which("podman"):
        print("image_check: podman is not installed (Debian: apt-get install podman runc); "
              "nothing was checked", file=sys.stderr)  # fmt: skip
        return 2
    podman, checks = Podman(args.runtime), Checks()
    build = ["build", "--network", "host", *podman.limits, "-f", DOCKERFILE, "-t", args.tag]
    build += ["--build-arg", f"PYTHON_IMAGE={args.base}"] if args.base else []
    print("+ nice -n 19", " ".join([*podman.base, *build, "."]), flush=True)
    built = subprocess.run(["nice", "-n", "19", *podman.base, *build, "."], check=False,
                           cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    if not checks(built.returncode == 0, "image builds", built.stderr.strip()[-3000:]):
        return 1
    try:
        check_image(podman, args.tag, checks)
        with tempfile.TemporaryDirectory(prefix="prsm-image-check-") as tmp:
            Path(tmp).chmod(0o755)
            check_gateway(podman, args.tag, Path(tmp), checks)
    except (RuntimeError, OSError, http.client.HTTPException, subprocess.SubprocessError,
            ValueError, KeyError, IndexError) as exc:  # fmt: skip
        checks(False, "the checks ran to the end", f"{type(exc).__name__}: {exc}")
    finally:
        for suffix in ("gw", "plain", "sim"):
            podman("rm", "-f", f"{NAME}-{suffix}", check=False)
    print(f"image_check: {len(checks.failed)} check(s) failed: {', '.join(checks.failed)}"
          if checks.failed else f"image_check: every check passed ({args.tag})")  # fmt: skip
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
