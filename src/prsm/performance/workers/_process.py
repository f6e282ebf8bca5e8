"""One worker process, seen from the pool: spawn it, talk to it, notice when it dies.

The process is a fresh interpreter (``python -m prsm.performance.workers._server``; spawned,
never forked from the serving process) holding one end of a socket pair. Calls are matched
to answers by id; when the connection drops, every call in flight fails at once with a
:class:`~prsm.performance.errors.WorkerError` saying so — nothing waits forever. Restarting
is the pool's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import sys
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import WorkerError
from ._protocol import FrameError, pack, read_message

log = logging.getLogger("prsm.performance.workers")


@dataclass(frozen=True, slots=True)
class EmbedBatch:
    """A worker's answer: ``vectors`` (n × dim float32), tokens per item, failed items."""

    vectors: np.ndarray[Any, np.dtype[np.float32]]
    tokens: list[int]
    errors: dict[int, str]
    seconds: float


class WorkerProcess:
    """A worker's process and connection. States: new, starting, ready, lost, stopped."""

    def __init__(
        self,
        worker_id: str,
        *,
        device: str = "cpu",
        threads: int = 0,
        model_dir: str | None = None,
        encode_batch_size: int = 0,
        start_timeout: float = 180.0,
        batch_timeout: float = 120.0,
    ) -> None:
        self.id = worker_id
        self.requested_device = device
        self.device = device
        self.threads = threads
        self.model_dir = model_dir
        self.encode_batch_size = encode_batch_size
        self.start_timeout = start_timeout
        self.batch_timeout = batch_timeout
        self.state = "new"
        self.pid: int | None = None
        self.dim = 0
        self.starts = 0
        self.batches = 0
        self.last_exit: int | None = None
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self._proc: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []

    # -- life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Spawn the process and wait until the model is loaded; :class:`WorkerError` if not."""
        await self._discard()
        self.state = "starting"
        self.starts += 1
        parent, child = socket.socketpair()
        env = dict(os.environ)
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        if self.threads > 0:
            env["OMP_NUM_THREADS"] = str(self.threads)
        model = ("--model-dir", self.model_dir) if self.model_dir is not None else ()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "prsm.performance.workers._server",
                "--fd", str(child.fileno()), "--device", self.requested_device,
                "--threads", str(self.threads),
                "--encode-batch-size", str(self.encode_batch_size), *model,
                pass_fds=(child.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )  # fmt: skip
        finally:
            child.close()
        self.pid = self._proc.pid
        reader, self._writer = await asyncio.open_unix_connection(sock=parent)
        assert self._proc.stderr is not None
        self._tasks.append(asyncio.create_task(self._pump_stderr(self._proc.stderr)))
        try:
            hello = await asyncio.wait_for(read_message(reader), self.start_timeout)
        except TimeoutError:
            self.kill()
            self.state = "lost"
            raise WorkerError(
                self.id, f"not ready after {self.start_timeout:.0f}s (process {self.pid} killed)"
            ) from None
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            code = await self._proc.wait()
            await asyncio.sleep(0)  # let the stderr pump take the last lines
            self.state = "lost"
            raise WorkerError(
                self.id, f"exited with code {code} before it was ready: {self._tail()}"
            ) from exc
        if hello.get("op") != "ready":
            self.kill()
            self.state = "lost"
            raise WorkerError(self.id, f"sent {hello!r} instead of ready")
        self.device = str(hello.get("device", self.requested_device))
        self.dim = int(hello.get("dim", 0))
        self.state = "ready"
        self._tasks.append(asyncio.create_task(self._read(reader)))
        log.info("worker %s ready: pid %s on %s", self.id, self.pid, self.device)

    async def exited(self) -> int:
        """Wait until the current process ends; its exit code (-1 if none was started)."""
        proc = self._proc
        if proc is None:
            return -1
        code = await proc.wait()
        self.last_exit = code
        self._lost(f"process {proc.pid} exited with code {code}")
        return code

    def kill(self) -> None:
        """Kill the process now (a hung or misbehaving worker)."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()

    async def stop(self, grace: float = 5.0) -> None:
        """Ask the worker to stop; kill it if it has not within ``grace`` seconds."""
        if self._writer is not None and self.state == "ready":
            with contextlib.suppress(ConnectionError):  # already gone: nothing to tell
                self._writer.write(pack({"op": "stop"}))
                await self._writer.drain()
        self.state = "stopped"
        if self._proc is not None and self._proc.returncode is None:
            try:
                await asyncio.wait_for(self._proc.wait(), grace)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        self._lost("worker stopped")
        await self._discard()
        self.state = "stopped"

    # -- calls ------------------------------------------------------------------------------
    async def embed(self, texts: list[str]) -> EmbedBatch:
        """Embed ``texts`` in one batch on this worker."""
        self.batches += 1
        reply = await self._call({"op": "embed", "texts": texts}, self.batch_timeout)
        if not reply.get("ok"):
            raise WorkerError(self.id, f"batch failed: {reply.get('error')}")
        dim = int(reply["dim"])
        vectors = np.frombuffer(reply["vectors"], dtype="<f4").reshape(len(texts), dim)
        errors = {int(k): str(v) for k, v in reply.get("errors", {}).items()}
        return EmbedBatch(vectors, list(reply["tokens"]), errors, float(reply["seconds"]))

    async def ping(self, limit: float) -> None:
        """Round-trip a ping behind whatever the worker is doing; :class:`WorkerError` if not."""
        await self._call({"op": "ping"}, limit)

    async def _call(self, message: dict[str, Any], limit: float) -> dict[str, Any]:
        if self.state != "ready" or self._writer is None:
            raise WorkerError(self.id, f"not ready (state: {self.state}); try another worker")
        ident = next(self._ids)
        message["id"] = ident
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        try:
            self._writer.write(pack(message))
            await self._writer.drain()
            return await asyncio.wait_for(future, limit)
        except TimeoutError:
            self.kill()
            raise WorkerError(
                self.id, f"{message['op']} took over {limit:.0f}s; process killed, restarting"
            ) from None
        except ConnectionError as exc:
            raise WorkerError(self.id, f"connection lost: {exc}") from exc
        finally:
            self._pending.pop(ident, None)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    # -- internals --------------------------------------------------------------------------
    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                message = await read_message(reader)
                future = self._pending.get(message.get("id", -1))
                if future is not None and not future.done():
                    future.set_result(message)
        except (asyncio.IncompleteReadError, ConnectionError, FrameError) as exc:
            self._lost(f"connection to process {self.pid} closed ({type(exc).__name__})")

    def _lost(self, why: str) -> None:
        if self.state == "ready":
            self.state = "lost"
        for future in self._pending.values():
            if not future.done():
                future.set_exception(
                    WorkerError(self.id, f"{why} while this call was in flight; it is restarted")
                )
        self._pending.clear()

    async def _pump_stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            self.stderr_tail.append(text)
            log.info("worker %s: %s", self.id, text)

    def _tail(self) -> str:
        return " | ".join(self.stderr_tail) or "(no output)"

    async def _discard(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):  # the peer may be gone already
                await self._writer.wait_closed()
            self._writer = None
