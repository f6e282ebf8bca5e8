"""Shared fixtures: a real Redis server on a free loopback port, free ports, the manual clock.

Under ``CI=true`` a missing ``redis-server`` is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from prsm.performance.clock import ManualClock
from tests.kubo import FakeKubo

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts connections on ``host:port`` (or fail after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class RedisServer:
    """A real ``redis-server`` process on a free loopback port, in a temporary directory."""

    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise FileNotFoundError("redis-server")
        self.exe = exe
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.exe, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def kill(self) -> None:
        """Kill it abruptly (a fault-injection test's "Redis died")."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


def _redis(tmp_path_factory: pytest.TempPathFactory) -> RedisServer:
    try:
        return RedisServer(tmp_path_factory.mktemp("redis"))
    except FileNotFoundError:
        if IN_CI:
            pytest.fail("redis-server is not installed, and CI=true requires it")
        pytest.skip("redis-server is not installed")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis server for the whole session (flush it yourself if you need it empty)."""
    server = _redis(tmp_path_factory)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis server of this test's own, which the test may kill and restart."""
    server = _redis(tmp_path_factory)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _private_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Persistent state written by tests (disk L2, CAS, indexes) goes to a temporary folder."""
    old = os.environ.get("PRSM_DATA_DIR")
    os.environ["PRSM_DATA_DIR"] = str(tmp_path_factory.mktemp("prsm-data"))
    yield
    if old is None:
        os.environ.pop("PRSM_DATA_DIR", None)
    else:
        os.environ["PRSM_DATA_DIR"] = old


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def kubo() -> AsyncIterator[tuple[FakeKubo, str]]:
    """A fake Kubo RPC API on a free loopback port: the fake and its base URL."""
    fake = FakeKubo()
    await fake.runner.setup()
    site = web.TCPSite(fake.runner, "127.0.0.1", 0)
    await site.start()
    host, port = fake.runner.addresses[0][:2]
    yield fake, f"http://{host}:{port}"
    await fake.runner.cleanup()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI=true a package a test needs is installed (scripts/install.sh installs every
    extra): a ``pytest.importorskip`` skip becomes a failure there."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if IN_CI and report.skipped and call.excinfo is not None:
        reason = str(call.excinfo.value)
        if reason.startswith("could not import"):
            report.outcome = "failed"
            report.longrepr = f"CI=true needs it installed: {reason}"
