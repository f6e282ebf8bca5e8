"""The servers the hostile-client cases attack (``benchmarks/_hostile.py``): the upstream
simulator, ``prsm-perf serve`` and its peers serving the same app from one config file, each
a real process on 127.0.0.1; and the servers' resident memory, sampled while a case runs."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from benchmarks.gateway import Server, family, free_port
from prsm.performance.http._server import raise_open_files

MODEL = "hostile-chat"


@dataclass
class Target:
    """A server under attack: its name, port and process id."""

    name: str
    port: int
    pid: int


@dataclass
class Servers:
    """The simulator, ours and uvicorn, started by :func:`start_servers`."""

    sim: Server
    targets: dict[str, Target]
    procs: list[Server] = field(default_factory=list)

    def stop(self) -> None:
        for s in reversed(self.procs):
            s.stop()


def start_servers(tmp: Path, *, timeout: int, peers: tuple[str, ...] = ("uvicorn",)) -> Servers:
    """The upstream simulator, ``prsm-perf serve`` with the HTTP timeouts set to ``timeout``
    seconds (the write timeout one more), and the ``peers`` (``uvicorn``, ``granian``) with
    their own equivalents set the same (uvicorn: ``--timeout-keep-alive``; granian:
    ``--http1-header-read-timeout``), every one serving the app from one config file."""
    raise_open_files(2 * 10_000 + 4096)  # the servers inherit it
    exe = [sys.executable, "-m", "prsm.performance.cli"]
    sim_port = free_port()
    sim = Server([*exe, "upstream-sim", "--port", str(sim_port), "--models", MODEL], sim_port,
                 "/healthz")  # fmt: skip
    procs = [sim]
    targets: dict[str, Target] = {}
    try:
        _control(sim_port, {"max_stream_tokens": 100_000})
        ours_port = free_port()
        http = {"header_timeout": timeout, "body_timeout": timeout,
                "keep_alive_timeout": timeout, "write_timeout": timeout + 1}  # fmt: skip
        config = {
            "nodes": [{"id": "sim", "url": f"http://127.0.0.1:{sim_port}/v1", "models": [MODEL]}],
            "gateway": {"port": ours_port, "http": http},
            "workers": {"enabled": False},
        }
        path = tmp / "hostile.yaml"
        path.write_text(yaml.safe_dump(config))
        ours = Server([*exe, "serve", "--config", str(path)], ours_port, "/readyz")
        procs.append(ours)
        targets["prsm"] = Target("prsm", ours_port, ours.proc.pid)
        env = {"PRSM_GATEWAY_CONFIG_FILE": str(path)}
        factory = "prsm.performance.serve._build:app_factory"
        for peer in peers:
            port = free_port()
            if peer == "uvicorn":
                cmd = [sys.executable, "-m", "uvicorn", factory, "--factory", "--host",
                       "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http",
                       "httptools", "--timeout-keep-alive", str(timeout), "--log-level",
                       "warning", "--no-access-log"]  # fmt: skip
            elif peer == "granian":
                cmd = [str(Path(sys.executable).with_name("granian")), "--interface", "asgi",
                       "--factory", "--host", "127.0.0.1", "--port", str(port), "--loop",
                       "uvloop", "--http", "1", "--workers", "1", "--http1-header-read-timeout",
                       str(timeout * 1000), "--log-level", "warning", "--no-access-log",
                       factory]  # fmt: skip
            else:
                raise ValueError(f"unknown peer {peer!r}: uvicorn or granian")
            server = Server(cmd, port, "/readyz", env=env)
            procs.append(server)
            targets[peer] = Target(peer, port, server.proc.pid)
    except BaseException:
        for s in reversed(procs):
            s.stop()
        raise
    return Servers(sim, targets, procs)


def _control(port: int, changes: dict[str, Any]) -> None:
    body = orjson.dumps(changes)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /_control HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
        if not s.recv(64).startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"the simulator refused {changes}")


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its direct children (MiB: a server's workers count),
    from ``/proc``."""
    total = 0.0
    for member in family(pid):
        with contextlib.suppress(OSError):  # it ended while we looked
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
    return total


@contextlib.contextmanager
def peak_rss(pid: int, out: list[float]) -> Iterator[None]:
    """Sample ``pid``'s RSS every 20 ms while the block runs; append the peak growth."""
    base = rss_mib(pid)
    peak = base
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.02):
            with contextlib.suppress(OSError):
                peak = max(peak, rss_mib(pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        out.append(max(0.0, max(peak, rss_mib(pid)) - base))
