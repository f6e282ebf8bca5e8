"""The helper host: the serving parent's helpers, shared by every gateway process of
``serve --workers N`` over an authenticated Unix socket (real processes, bounded, stopped)."""

from __future__ import annotations

import asyncio
import operator
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prsm.performance import _helper_host
from prsm.performance._helper_host import HelperHost, RemoteHelper, shared_helper
from prsm.performance._helper_process import HelperProcess
from prsm.performance.errors import HelperProcessError

pytestmark = pytest.mark.integration

NAME = "test helper"


@pytest.fixture
def host() -> Iterator[HelperHost]:
    h = HelperHost()
    h.start()
    yield h
    h.stop()


@pytest.fixture
def client(host: HelperHost) -> Iterator[RemoteHelper]:
    r = RemoteHelper(NAME, host.path, host.key)
    yield r
    r.close()


def test_clients_share_the_hosts_one_helper(host: HelperHost, client: RemoteHelper) -> None:
    other = RemoteHelper(NAME, host.path, host.key)
    try:
        client.prepare(os.getpid, (), 30.0)
        pid = client.call(os.getpid, (), 30.0)
        assert other.call(os.getpid, (), 30.0) == pid == host.helpers[NAME].pid != os.getpid()
        assert other.call(operator.add, (2, 3), 30.0) == 5
        assert host.calls == 4 and host.helpers[NAME].starts == 1
    finally:
        other.close()


def test_a_call_that_prepares_first_is_one_round_trip(
    host: HelperHost, client: RemoteHelper, tmp_path: Path
) -> None:
    made = str(tmp_path / "made")  # os.mkdir fails if it runs twice on the same path
    prepare = (os.mkdir, (made,))
    pid = client.call(os.getpid, (), 30.0, prepare=prepare)
    assert client.call(os.getpid, (), 30.0, prepare=prepare) == pid
    assert os.path.isdir(made) and host.calls == 2  # two messages, mkdir run once
    host.helpers[NAME].close()
    with pytest.raises(HelperProcessError, match="FileExistsError"):  # prepared again
        client.call(os.getpid, (), 30.0, prepare=prepare)


async def test_an_async_call_answers_as_a_blocking_one(
    host: HelperHost, client: RemoteHelper, tmp_path: Path
) -> None:
    made = str(tmp_path / "made")
    pid = await client.acall(os.getpid, (), 30.0, prepare=(os.mkdir, (made,)))
    assert pid == client.call(os.getpid, (), 30.0) == host.helpers[NAME].pid != os.getpid()
    assert await client.acall(len, ("x" * 3_000_000,), 30.0) == 3_000_000
    with pytest.raises(HelperProcessError, match="ZeroDivisionError"):
        await client.acall(operator.truediv, (1, 0), 30.0)
    with pytest.raises(TimeoutError, match=r"sleep ran past 0\.2s"):
        await client.acall(time.sleep, (30,), 0.2)
    assert await client.acall(operator.mul, (6, 7), 30.0) == 42
    first = asyncio.ensure_future(client.acall(time.sleep, (0.3,), 30.0))
    await asyncio.sleep(0.05)
    first.cancel()  # shielded: the call finishes and the next reads its own answer
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await client.acall(operator.add, (2, 3), 30.0) == 5


def test_errors_and_timeouts_come_back_as_in_one_process(client: RemoteHelper) -> None:
    with pytest.raises(HelperProcessError, match="ZeroDivisionError") as info:
        client.call(operator.truediv, (1, 0), 30.0)
    assert info.value.name == NAME and "Traceback" in str(info.value)
    with pytest.raises(TimeoutError, match=r"sleep ran past 0\.2s"):
        client.call(time.sleep, (30,), 0.2)
    assert client.call(operator.mul, (6, 7), 30.0) == 42  # a fresh helper


def test_a_client_without_the_key_is_refused_and_the_host_serves_on(
    host: HelperHost, client: RemoteHelper
) -> None:
    stranger = RemoteHelper(NAME, host.path, os.urandom(32))
    with pytest.raises(HelperProcessError, match="lost the helper host"):
        stranger.call(os.getpid, (), 30.0)
    assert NAME not in host.helpers  # nothing ran for it
    assert client.call(operator.add, (1, 1), 30.0) == 2
    assert oct(os.stat(host.path).st_mode & 0o777) == oct(0o600)
    assert oct(os.stat(host.folder).st_mode & 0o777) == oct(0o700)


def test_a_stopped_host_is_an_error_for_its_clients() -> None:
    h = HelperHost()
    h.start()
    r = RemoteHelper(NAME, h.path, h.key)
    pid = r.call(os.getpid, (), 30.0)
    h.stop()
    assert not h.helpers[NAME].alive and not Path(h.folder).exists()
    with pytest.raises(HelperProcessError):
        r.call(os.getpid, (), 30.0)  # its connection is answered with an error, or gone
    with pytest.raises(HelperProcessError, match="lost the helper host"):
        r.call(os.getpid, (), 30.0)  # a new connection: no socket
    assert not h.helpers[NAME].alive
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_remote_helper_needs_a_key() -> None:
    with pytest.raises(HelperProcessError, match="PRSM_HELPER_KEY"):
        RemoteHelper(NAME, "/nonexistent.sock", b"")


def test_processes_given_the_hosts_environment_share_its_helper(
    host: HelperHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``serve --workers N`` does: each gateway process's ``shared_helper`` is the
    host's, so a model loads once for all of them."""
    code = (
        "import os; from prsm.performance._helper_host import shared_helper; "
        f"print(shared_helper({NAME!r}).call(os.getpid, (), 30.0))"
    )
    env = {**os.environ, **host.env()}
    run = [sys.executable, "-c", code]
    pids = {
        int(subprocess.run(run, env=env, check=True, timeout=120, capture_output=True).stdout)
        for _ in range(2)
    }
    assert pids == {host.helpers[NAME].pid}
    # and in this process, with the same environment
    monkeypatch.setattr(_helper_host, "_SHARED", {})
    for key, value in host.env().items():
        monkeypatch.setenv(key, value)
    here = shared_helper(NAME)
    assert isinstance(here, RemoteHelper) and shared_helper(NAME) is here
    assert here.call(os.getpid, (), 30.0) in pids
    here.close()
    for key in host.env():
        monkeypatch.delenv(key)
    monkeypatch.setattr(_helper_host, "_SHARED", {})
    assert isinstance(shared_helper(NAME), HelperProcess)  # no host: a helper of its own
