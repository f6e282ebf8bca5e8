"""What the fault and soak benchmarks share: real processes on loopback that can be broken on
purpose (upstream simulators, Redis, a small tmpfs, our gateway, LiteLLM's proxy), an
open-loop load client that checks every answer, and samples of a process tree's memory and
file descriptors.

Every server is a real process on 127.0.0.1 and a free port; nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import yaml

from benchmarks._loadgen import pct

MODEL = "bench-chat"
EMBED_MODEL = "all-MiniLM-L6-v2"
ROOT = Path(__file__).resolve().parent.parent
WORKER_MODULE = "prsm.performance.workers._server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(
    port: int, path: str, timeout: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process on port {port} exited with {proc.returncode}")
        try:
            r = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1.0)
            if r.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"nothing answered 200 on 127.0.0.1:{port}{path} in {timeout}s")


class Proc:
    """A server process with its output in a temporary file (shown if it fails to start)."""

    def __init__(self, cmd: Sequence[str], port: int, health: str, *,
                 env: dict[str, str] | None = None, timeout: float = 60.0) -> None:  # fmt: skip
        self.cmd = list(cmd)
        self.port = port
        self.health = health
        self.env = {**os.environ, **(env or {})}
        self.timeout = timeout
        self.log = tempfile.NamedTemporaryFile(prefix="prsm-bench-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, env=self.env,
                                cwd=ROOT)  # fmt: skip
        try:
            wait_http(self.port, self.health, self.timeout, proc)
        except (TimeoutError, RuntimeError) as exc:
            self._end(proc)
            raise RuntimeError(
                f"{self.cmd[:4]} did not start ({exc}):\n{self.output()[-3000:]}"
            ) from None
        return proc

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """Hard down: SIGKILL, nothing flushed, the port refuses connections."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.kill()
        self.proc = self._spawn()

    @staticmethod
    def _end(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self) -> None:
        self._end(self.proc)
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)


def start_sim(name: str, *, latency: float, port: int | None = None) -> Proc:
    port = port or free_port()
    cmd = [sys.executable, "-m", "prsm.performance.cli", "upstream-sim", "--port", str(port),
           "--name", name, "--models", MODEL, "--latency", str(latency), "--ttft", str(latency),
           "--seed", str(sum(map(ord, name)))]  # fmt: skip
    return Proc(cmd, port, "/healthz")


def control(sim: Proc, **changes: Any) -> dict[str, Any]:
    """Change a simulator's behaviour while it runs (its ``POST /_control``)."""
    r = httpx.post(f"http://127.0.0.1:{sim.port}/_control", json=changes, timeout=5)
    r.raise_for_status()
    out: dict[str, Any] = r.json()
    return out


class Redis:
    """A ``redis-server`` on a free loopback port that can be killed and started again."""

    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (scripts/install.sh installs it)")
        self.exe, self.workdir, self.port = exe, workdir, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not listen on {self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


class SmallDisk:
    """A small tmpfs (root only) that can be filled to the brim and emptied again; where it
    cannot be mounted, a plain folder and ``why`` says so (the disk-full fault is skipped)."""

    def __init__(self, size: str = "16m") -> None:
        self.path = Path(tempfile.mkdtemp(prefix="prsm-bench-disk-"))
        self.mounted = False
        self.why = ""
        cmd = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(self.path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            self.mounted = True
        else:
            self.why = f"cannot mount a tmpfs: {proc.stderr.strip() or proc.returncode}"
        self.filler = self.path / "filler"

    def fill(self) -> None:
        """Write until the file system is full (ENOSPC)."""
        chunk = b"\0" * 65536
        try:  # unbuffered: nothing is left to flush (and fail) when the file closes
            with self.filler.open("wb", buffering=0) as f:
                while True:
                    f.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise  # ENOSPC is the point: full, as wanted

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False)
        shutil.rmtree(self.path, ignore_errors=True)


def start_ours(sims: Sequence[Proc], tmp: Path, *, redis: Redis, data_dir: Path, workers: int,
               reset_timeout: float, failure_threshold: int) -> Proc:  # fmt: skip
    port = free_port()
    cfg = {
        "nodes": [{"id": s.cmd[s.cmd.index("--name") + 1], "url": f"http://127.0.0.1:{s.port}/v1",
                   "models": [MODEL], "timeout": 30, "resume": "continue_final_message"}
                  for s in sims],
        "gateway": {"port": port, "request_timeout": 30},
        "orchestrator": {"caching_strategy": "multi_tier", "max_attempts": 3},
        "breaker": {"failure_threshold": failure_threshold, "reset_timeout": reset_timeout},
        "cache": {"l2": "redis", "redis_url": redis.url, "l3": "cas", "data_dir": str(data_dir)},
        "workers": {"enabled": workers > 0, "count": max(workers, 1)},
    }  # fmt: skip
    path = tmp / "prsm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "prsm.performance.cli", "serve", "--config", str(path)]
    return Proc(cmd, port, "/readyz", timeout=300)


def start_litellm(sims: Sequence[Proc], tmp: Path, *, redis: Redis, cooldown: float,
                  allowed_fails: int) -> Proc:  # fmt: skip
    port = free_port()
    cfg = {
        "model_list": [
            {"model_name": MODEL,
             "litellm_params": {"model": f"openai/{MODEL}", "api_base": f"http://127.0.0.1:{s.port}/v1",
                                "api_key": "sk-bench", "timeout": 30, "stream_timeout": 30}}
            for s in sims
        ],
        "router_settings": {"routing_strategy": "simple-shuffle", "num_retries": 2,
                            "allowed_fails": allowed_fails, "cooldown_time": cooldown,
                            "retry_after": 0},
        "litellm_settings": {"telemetry": False, "set_verbose": False, "request_timeout": 30,
                             "cache": True,
                             "cache_params": {"type": "redis", "host": "127.0.0.1",
                                              "port": redis.port}},
    }  # fmt: skip
    path = tmp / "litellm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    exe = str(Path(sys.executable).with_name("litellm"))
    cmd = [
        exe,
        "--config",
        str(path),
        "--num_workers",
        "1",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {"LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}  # fmt: skip
    return Proc(cmd, port, "/health/liveliness", env=env, timeout=300)


def descendants(pid: int) -> dict[int, str]:
    """Every live descendant of ``pid`` and its command line (Linux ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # it ended while we looked
            children.setdefault(ppid, []).append(int(entry.name))
    out: dict[int, str] = {}
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        try:
            out[child] = (
                (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            )
        except OSError:
            continue
        todo.extend(children.get(child, []))
    return out


def kill_one_worker(gateway_pid: int) -> int | None:
    """SIGKILL one local model worker of the gateway; its pid, or ``None`` if it has none."""
    for pid, cmd in sorted(descendants(gateway_pid).items()):
        if WORKER_MODULE in cmd:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                return pid
    return None


def tree_usage(pid: int, *, tree: bool = True) -> tuple[int, int]:
    """Resident memory (bytes) and open file descriptors of ``pid`` (and its descendants)."""
    rss = fds = 0
    for member in [pid, *(descendants(pid) if tree else ())]:
        try:
            for line in (Path("/proc") / str(member) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) * 1024
            fds += len(os.listdir(f"/proc/{member}/fd"))
        except OSError:
            continue  # it ended while we looked
    return rss, fds


# --- the load --------------------------------------------------------------------------------
@dataclass
class Outcome:
    """One request: when it was due (seconds from the start), how long until its whole answer,
    and what came back: ``ok``, ``failed`` (an error answer) or ``lost`` (no whole answer:
    the connection failed, the request timed out, or a stream was cut or ended in an error)."""

    due: float
    latency: float
    result: str
    status: int = 0
    detail: str = ""
    stream: bool = False
    node: str = ""  # the answering node, where the gateway names it (x-prsm-node)


@dataclass
class Load:
    """Open-loop load: request ``i`` is due at ``i / rate`` seconds; latency counts from then."""

    url: str
    rate: float
    duration: float
    stream_every: int = 2  # every n-th request streams (0: none)
    embeddings: bool = False
    timeout: float = 30.0
    body_for: Callable[[int], dict[str, Any]] | None = None
    arrivals: Sequence[float] | None = None  # due times (seconds) instead of a fixed rate
    path_for: Callable[[int], str] | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    def _body(self, i: int) -> tuple[str, dict[str, Any], bool]:
        if self.embeddings:
            return (
                "/v1/embeddings",
                {"model": EMBED_MODEL, "input": [f"question number {i}?"]},
                False,
            )
        path = self.path_for(i) if self.path_for else "/v1/chat/completions"
        if path == "/v1/embeddings" and self.body_for:
            return path, self.body_for(i), False
        stream = self.stream_every > 0 and i % self.stream_every == 0
        body = self.body_for(i) if self.body_for else {
            "model": MODEL, "max_tokens": 16,
            "messages": [{"role": "user", "content": f"Say hello to request {i}."}],
        }  # fmt: skip
        return path, {**body, "stream": stream}, stream

    async def open(self) -> None:
        """Make the client (before the clock starts: that takes a while on a busy machine).
        aiohttp, not httpx: httpx's pool spends time quadratic in the requests waiting for a
        connection, so a burst of arrivals made the client itself the bottleneck."""
        connector = aiohttp.TCPConnector(limit=512, limit_per_host=512)
        timeout = aiohttp.ClientTimeout(total=2 * self.timeout, sock_read=self.timeout)
        self.client = aiohttp.ClientSession(self.url, connector=connector, timeout=timeout)

    async def run(self, t0: float | None = None) -> list[Outcome]:
        if getattr(self, "client", None) is None:
            await self.open()
        client = self.client
        loop = asyncio.get_running_loop()
        start = t0 if t0 is not None else loop.time()
        tasks = []
        try:
            dues = self.arrivals or [i / self.rate for i in range(int(self.rate * self.duration))]
            for i, offset in enumerate(dues):
                due = start + offset
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self._one(client, i, due - start, start)))
            await asyncio.gather(*tasks)
        finally:
            await client.close()
        return self.outcomes

    async def _one(self, client: aiohttp.ClientSession, i: int, due: float, start: float) -> None:
        loop = asyncio.get_running_loop()
        path, body, stream = self._body(i)
        result, status, detail, node = "ok", 0, "", ""
        try:
            async with client.post(path, json=body) as r:
                status = r.status
                node = r.headers.get("x-prsm-node", "")
                raw = await r.read()
            text = raw.decode(errors="replace")
            if status != 200:
                result, detail = "failed", text[:200]
            elif stream:
                events = [e for e in text.split("\n\n") if e.startswith("data:")]
                if not events or events[-1].strip() != "data: [DONE]":
                    result, detail = "lost", "stream did not end with [DONE]"
                elif any('"error"' in e for e in events):
                    result, detail = "lost", "stream carried an error event"
                elif self.body_for is None and _streamed_text(events) != ANSWER:
                    result, detail = "lost", "stream text not the whole answer"
            else:
                data = json.loads(raw)
                if "choices" not in data and "data" not in data:
                    result, detail = "lost", "answer without choices"
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
            result, detail = "lost", f"{type(exc).__name__}: {exc}"
        latency = loop.time() - (start + due)
        self.outcomes.append(Outcome(due, latency, result, status, detail, stream, node))


#: the simulators' answer to the default body (max_tokens 16): what a whole stream must carry
ANSWER = "tok0" + "".join(f" tok{i}" for i in range(1, 16))


def _streamed_text(events: Sequence[str]) -> str:
    """The text a chat stream's events carry (their deltas' content, in order)."""
    parts = []
    for e in events:
        data = e[5:].strip()
        if data == "[DONE]":
            continue
        for choice in json.loads(data).get("choices") or ():
            parts.append((choice.get("delta") or {}).get("content") or "")
    return "".join(parts)


def summarize(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    n = len(outcomes)
    ok = [o for o in outcomes if o.result == "ok"]
    lat = [o.latency for o in ok]
    details = collections.Counter(o.detail.split(":", 1)[0] for o in outcomes if o.result != "ok")
    return {
        "requests": n,
        "ok": len(ok),
        "failed": sum(o.result == "failed" for o in outcomes),
        "lost": sum(o.result == "lost" for o in outcomes),
        "success_pct": 100.0 * len(ok) / n if n else None,
        "p50_ms": None if not lat else 1e3 * (pct(lat, 50) or 0),
        "p99_ms": None if not lat else 1e3 * (pct(lat, 99) or 0),
        "why_not_ok": ", ".join(f"{d or '?'} x{k}" for d, k in details.most_common(2)),
    }
