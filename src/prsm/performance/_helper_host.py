"""Helpers shared by every gateway process of ``prsm-perf serve --workers N``.

Each gateway process would otherwise start its own helpers (:mod:`._helper_process`): N
copies of the semantic cache's embedding model and of its cross-encoder. Instead the
serving parent runs a :class:`HelperHost`: the helpers themselves (started on first use,
as in one process) and a Unix socket in a private folder (mode 0700) on which
:mod:`multiprocessing.connection` authenticates each client with an HMAC challenge on a key
only the parent and its children know (:data:`HELPER_KEY_ENV`). A gateway process then gets
a :class:`RemoteHelper` from :func:`shared_helper`: the same blocking ``call`` and
``prepare``, carried to the parent's helper (a ``call`` that asks for something prepared
first is one round trip, not two). The model loads once; calls from every process
queue on it one at a time, as calls within one process do.

A call waits for its answer up to its ``timeout`` plus :data:`LOAD_TIMEOUT` (it may queue
behind another process's model load); past that it raises :class:`TimeoutError` and drops
its connection, so a late answer is never read as the next call's. A lost host raises
:class:`~prsm.performance.errors.HelperProcessError`; the next call connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any, Protocol

from ._helper_async import acquire, frame, readable, shielded, write
from ._helper_process import LOAD_TIMEOUT, HelperProcess, Prepare
from .errors import HelperProcessError

log = logging.getLogger(__name__)

#: where a gateway process finds the serving parent's helper host (set by ``serve``)
HELPER_SOCKET_ENV = "PRSM_HELPER_SOCKET"
#: the host's authentication key, hex (set by ``serve`` for its children only)
HELPER_KEY_ENV = "PRSM_HELPER_KEY"

_SHARED: dict[str, Helper] = {}
_SHARED_LOCK = threading.Lock()


class Helper(Protocol):
    """What users of a shared helper call (both block the calling thread, not the GIL)."""

    name: str

    def call(self, func: Callable[..., Any], args: tuple[Any, ...], timeout: float, *,
             prepare: Prepare | None = None) -> Any: ...  # fmt: skip

    def prepare(self, func: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> None: ...

    async def acall(self, func: Callable[..., Any], args: tuple[Any, ...], limit: float, *,
                    prepare: Prepare | None = None) -> Any: ...  # fmt: skip


def shared_helper(name: str) -> Helper:
    """The process's one helper called ``name`` (made on first use): every user of one
    model in this process shares it, so the model loads once. Under a helper host (a
    gateway process of ``serve --workers N``) it is the host's helper, shared by every
    process."""
    with _SHARED_LOCK:
        helper = _SHARED.get(name)
        if helper is None:
            path = os.environ.get(HELPER_SOCKET_ENV)
            if path:
                key = bytes.fromhex(os.environ.get(HELPER_KEY_ENV, ""))
                helper = RemoteHelper(name, path, key)
            else:
                helper = HelperProcess(name)
            _SHARED[name] = helper
        return helper


class RemoteHelper:
    """A helper of the serving parent's :class:`HelperHost`, reached over its socket (one
    connection, one call at a time)."""

    def __init__(self, name: str, path: str, key: bytes) -> None:
        if not key:
            raise HelperProcessError(name, f"no key in {HELPER_KEY_ENV} for the helper host")
        self.name, self.path, self.key = name, path, key
        self.lock = threading.Lock()
        self._conn: Connection | None = None

    def call(self, func: Callable[..., Any], args: tuple[Any, ...], timeout: float, *,
             prepare: Prepare | None = None) -> Any:  # fmt: skip
        return self._ask("call", func, args, timeout, prepare)

    def prepare(self, func: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> None:
        self._ask("prepare", func, args, timeout, None)

    async def acall(self, func: Callable[..., Any], args: tuple[Any, ...], limit: float, *,
                    prepare: Prepare | None = None) -> Any:  # fmt: skip
        """:meth:`call` from the event loop, without a worker thread (:mod:`._helper_async`;
        connecting, which authenticates, runs in the loop's executor). Shielded, as
        :meth:`HelperProcess.acall <._helper_process.HelperProcess.acall>` is."""
        return await shielded(self._acall(func, args, limit, prepare))

    async def _acall(self, func: Callable[..., Any], args: tuple[Any, ...], limit: float,
                     prepare: Prepare | None) -> Any:  # fmt: skip
        loop = asyncio.get_running_loop()
        await acquire(self.lock, limit + LOAD_TIMEOUT)
        try:
            try:
                if self._conn is None:
                    self._conn = await loop.run_in_executor(None, self._connect)
                message = ("call", self.name, func, args, limit, prepare)
                await write(self._conn.fileno(), frame(message))
                ready = await readable(self._conn.fileno(), limit + LOAD_TIMEOUT)
                if not ready:
                    self.close()  # its late answer must not be read as the next call's
                    raise _no_answer(self.name, func, limit)
                kind, payload = self._conn.recv()
            except (AuthenticationError, EOFError, OSError) as exc:
                self.close()
                raise HelperProcessError(self.name, f"lost the helper host: {exc!r}") from exc
            except asyncio.CancelledError:  # its loop is closing: drop the answer on the way
                self.close()
                raise
        finally:
            self.lock.release()
        return _answer(self.name, kind, payload)

    def _connect(self) -> Connection:
        return Client(self.path, family="AF_UNIX", authkey=self.key)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
        self._conn = None

    def _ask(self, op: str, func: Callable[..., Any], args: tuple[Any, ...], timeout: float,
             prepare: Prepare | None) -> Any:  # fmt: skip
        with self.lock:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                self._conn.send((op, self.name, func, args, timeout, prepare))
                if not self._conn.poll(timeout + LOAD_TIMEOUT):
                    self.close()  # its late answer must not be read as the next call's
                    raise _no_answer(self.name, func, timeout)
                kind, payload = self._conn.recv()
            except (AuthenticationError, EOFError, OSError) as exc:
                self.close()
                raise HelperProcessError(self.name, f"lost the helper host: {exc!r}") from exc
        return _answer(self.name, kind, payload)


def _no_answer(name: str, func: Callable[..., Any], limit: float) -> TimeoutError:
    return TimeoutError(
        f"{name}: the helper host did not answer {func.__name__} within {limit + LOAD_TIMEOUT:g}s"
    )


def _answer(name: str, kind: str, payload: Any) -> Any:
    if kind == "done":
        return payload
    if kind == "timeout":
        raise TimeoutError(payload)
    raise HelperProcessError(name, str(payload))


class HelperHost:
    """Serves helpers of this process to its children on a Unix socket: ``start()``,
    :meth:`env` for the children's environment, ``stop()``."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="prsm-helpers-"))  # 0700
        self.path = str(self.folder / "helpers.sock")
        self.key = os.urandom(32)
        self.calls = 0
        self.helpers: dict[str, HelperProcess] = {}
        self._lock = threading.Lock()
        self._listener: Listener | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    def env(self) -> dict[str, str]:
        """The variables a child needs to reach this host."""
        return {HELPER_SOCKET_ENV: self.path, HELPER_KEY_ENV: self.key.hex()}

    def start(self) -> None:
        self._listener = Listener(self.path, family="AF_UNIX", authkey=self.key)
        os.chmod(self.path, 0o600)
        self._thread = threading.Thread(target=self._accept, name="prsm-helper-host", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, stop the helpers and remove the socket's folder."""
        self._stopping = True
        if self._listener is not None and self._thread is not None:
            with contextlib.suppress(OSError, EOFError):  # wakes accept(); it then returns
                Client(self.path, family="AF_UNIX", authkey=self.key).close()
            self._thread.join(timeout=10)
            self._listener.close()
        with self._lock:
            for helper in self.helpers.values():
                helper.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _helper(self, name: str) -> HelperProcess:
        with self._lock:
            helper = self.helpers.get(name)
            if helper is None:
                helper = self.helpers[name] = HelperProcess(name)
            return helper

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                conn = self._listener.accept()
            except (AuthenticationError, OSError, EOFError) as exc:  # failed the challenge
                if self._stopping:
                    return
                log.warning("helper host: refused a connection: %r", exc)
                continue
            if self._stopping:  # stop()'s own wake-up call
                conn.close()
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        """One client's calls, one at a time, until it disconnects."""
        with conn:
            while True:
                try:
                    op, name, func, args, timeout, prepare = conn.recv()
                except (EOFError, OSError):
                    return
                if self._stopping:
                    with contextlib.suppress(OSError):
                        conn.send(("error", "the helper host is stopping"))
                    return
                helper = self._helper(name)
                try:
                    if op == "prepare":
                        helper.prepare(func, args, timeout)
                        reply: tuple[str, Any] = ("done", None)
                    else:
                        reply = ("done", helper.call(func, args, timeout, prepare=prepare))
                    self.calls += 1
                except TimeoutError as exc:
                    reply = ("timeout", str(exc))
                except HelperProcessError as exc:
                    reply = ("error", str(exc))
                except Exception as exc:  # e.g. arguments that do not pickle: the caller's
                    reply = ("error", f"{type(exc).__name__}: {exc}")
                try:
                    conn.send(reply)
                except OSError:  # the client gave up (its own timeout) or exited
                    return
