"""Starting the real simulator and gateway as processes on free loopback ports (tests and
benchmarks), and stopping them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import free_port, wait_for_port


class Proc:
    """A ``prsm-perf`` subcommand running in its own process."""

    def __init__(
        self, args: list[str], port: int, env: dict[str, str] | None = None, *, wait: bool = True
    ) -> None:
        self.port = port
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prsm.performance.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        try:
            wait_for_port(self.port, timeout=60)
        except TimeoutError:
            self.stop()
            out = self.proc.stdout.read().decode() if self.proc.stdout else ""
            raise RuntimeError(f"prsm-perf {self.args[0]} did not start: {out}") from None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
        if self.proc.stdout:
            self.proc.stdout.close()


def start_sim(name: str, *extra: str, wait: bool = True) -> Proc:
    port = free_port()
    return Proc(["upstream-sim", "--port", str(port), "--name", name, *extra], port, wait=wait)


def start_gateway(tmp: Path, config: dict[str, Any], env: dict[str, str] | None = None) -> Proc:
    port = free_port()
    config = {**config, "gateway": {**config.get("gateway", {}), "port": port}}
    config.setdefault("workers", {"enabled": False})  # no model load unless a test asks
    path = tmp / f"gateway-{port}.yaml"
    path.write_text(yaml.safe_dump(config))
    return Proc(["serve", "--config", str(path)], port, env)


def node(node_id: str, sim: Proc, models: list[str], **kw: Any) -> dict[str, Any]:
    return {"id": node_id, "url": f"{sim.url}/v1", "models": models, **kw}


def wait_for(fn: Callable[[], Any], timeout: float = 15.0) -> Any:
    """``fn()``'s first true value, polled every 0.1 s (its last value after ``timeout``): for
    what a real process does on its own time (flushes, timers)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)
