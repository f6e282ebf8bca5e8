"""One local model pool for every gateway process of ``prsm-perf serve --workers N``.

Each gateway process used to start its own pool: N × ``workers.count`` copies of the model,
and no batching across processes. Now the serving parent starts the pool once
(:class:`PoolHost`: an event loop in a thread of the parent, holding the
:class:`~prsm.performance.workers.LocalWorkerPool`, its supervisor and the batching
:class:`~prsm.performance.workers.LocalModelUpstream`) and listens on a Unix socket in a
private folder (mode 0700: only the same user can connect). Each gateway process reaches it
with a :class:`SharedPoolUpstream` (the ``local`` route of its dispatcher): one connection,
many calls in flight, matched by id. Texts from every gateway process share one batcher per
device, so batches fill across processes as they do within one.

The wire is the workers' own framing (:mod:`prsm.performance.workers._protocol`:
length-prefixed MessagePack). Gateway → host: ``{"op": "hello"}`` (answered with the pool's
nodes), ``{"op": "execute", "id", "node", "kind", "model", "priority", "body"}`` (``body``:
the request's JSON bytes), ``{"op": "stats", "id"}``, ``{"op": "metrics", "id"}`` (answered
with ``"text"``: the pool's, batcher's and scaler's Prometheus exposition),
``{"op": "peers", "id"}`` (answered with ``"peers"``: ``[name, exposition]`` of every other
gateway process that answered the host's ``{"op": "collect", "id"}`` with
``{"op": "collected", "id", "text"}`` within ``collect_timeout``, and ``"missing"``: the names
of those that did not; see :mod:`._process_metrics`). ``hello`` may carry the process's
``"instance"`` name. Host → gateway: ``{"id", "ok": true, "body", "tokens"}`` or
``{"id", "ok": false, "status", "retryable", "message"}``. If the connection drops, calls in
flight fail as a retryable 503 (the orchestrator tries another node) and the next call
reconnects.

The host is :class:`PoolHost` over its base :class:`~._pool_nodes.PoolNodes`, which holds its
nodes and scaler and pushes their changes (the text of :mod:`._pool_nodes` has the scaling).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import threading
from collections.abc import Callable
from typing import Any

import orjson

from ..errors import PRSMError
from ..routing._node import NodeState
from ..scaling._tracked import check_load_events, end_held, play_load
from ..types import AIRequest, JSONBody, RequestKind
from ..workers._protocol import FrameError, pack, read_message
from ._pool_nodes import PoolNodes, RemoteScaler
from ._pool_wire import error_reply, node_dict

log = logging.getLogger(__name__)

#: the environment variable through which gateway processes find the shared pool's socket
POOL_SOCKET_ENV = "PRSM_LOCAL_POOL_SOCKET"


class PoolHost(PoolNodes):
    """Runs the local worker pool in a thread of this process and serves it on a Unix socket.

    ``start()`` blocks until every worker is ready (or raises what stopped them);
    ``stop()`` closes the socket, the batchers and the workers. ``settings`` ``None``: no
    local pool. ``remote`` (with ``scaling``): the scaler to run instead of the pool's.
    ``collect_timeout``: how long a gateway process's metrics are waited for at a scrape.
    """

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prsm-pool-host", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failed is not None:
            self.stop()
            raise self._failed

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended already
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self) -> None:
        import uvloop

        try:
            uvloop.run(self._main())
        except BaseException as exc:  # handed to start(), which raises it in the parent
            if not self._ready.is_set():
                self._failed = exc
            else:
                log.exception("the shared local model pool stopped")
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self.settings is not None:
            from ..workers import start_default_workers

            pool, nodes, local = await start_default_workers(self.settings, metrics=self.metrics)
            self._pool, self._local, self._route = pool, local, local
            for node in nodes:
                self.registry.add(node)
        if self.scaling is not None:
            self._start_scaler(self.scaling)
        self.registry.add_listener(self._changed)
        server = await asyncio.start_unix_server(self._serve, path=self.path)
        os.chmod(self.path, 0o600)
        if self.scaler is not None:
            self.scaler.start()
        leases = asyncio.create_task(self.receiver.run()) if self.receiver is not None else None
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            if leases is not None:
                leases.cancel()
            if self.scaler is not None:
                await self.scaler.close()
            if self._local is not None:
                await self._local.aclose()
                await self._pool.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients += 1
        self._writers.add(writer)
        tasks: set[asyncio.Task[None]] = set()
        held: dict[str | None, int] = {}  # of this connection's reported load, per node
        try:
            while True:
                message = await read_message(reader)
                op = message.get("op")
                if op == "hello":
                    name = message.get("instance")
                    if isinstance(name, str) and name:
                        self._names[writer] = name
                    nodes = [node_dict(n) for n in self.serving()]
                    writer.write(pack({"op": "nodes", "nodes": nodes}))
                    if self.scaler is not None:
                        writer.write(self._scaling_message())
                elif op == "metrics":
                    writer.write(pack({"id": message.get("id"), "ok": True,
                                       "text": self.metrics.exposition()}))  # fmt: skip
                elif op == "peers":
                    task = asyncio.create_task(self._peers(int(message.get("id", 0)), writer))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                elif op == "collected":
                    _, future = self._collects.pop(int(message.get("id", 0)), (None, None))
                    if future is not None and not future.done():
                        future.set_result(bytes(message.get("text") or b""))
                elif op == "stats":
                    writer.write(pack({"id": message.get("id"), "ok": True,
                                       "stats": self.stats()}))  # fmt: skip
                elif op == "load":
                    try:
                        self._load(message.get("events") or [], held)
                    except (ValueError, TypeError, IndexError) as exc:  # not played: say so
                        log.error("a gateway process's load report was refused: %s", exc)
                elif op == "pods" and self.receiver is not None:  # another pod's report
                    self.receiver.forwarded(message["report"])  # checked by the gateway process
                elif op == "history" and self.standby is not None:  # for another candidate
                    since = message.get("since")
                    if isinstance(since, bool) or not isinstance(since, (int, float)):
                        problem = ValueError(f"since: a number expected, got {since!r}")
                        writer.write(pack({**error_reply(int(message.get("id", 0)), problem),
                                           "status": 400}))  # fmt: skip
                        continue
                    asked = message.get("sessions") is True
                    status, body = await self.scaler.history(float(since), asked)
                    writer.write(pack({"id": message.get("id"), "ok": True, "status": status,
                                       "body": body}))  # fmt: skip
                elif op == "execute":
                    task = asyncio.create_task(self._execute(message, writer))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                else:
                    problem = ValueError(f"unknown op {op!r}")
                    writer.write(pack({**error_reply(int(message.get("id", 0)), problem),
                                       "status": 400}))  # fmt: skip
        except (asyncio.IncompleteReadError, ConnectionError, FrameError):
            pass  # the gateway process went away: its calls are cancelled below
        finally:
            self.clients -= 1
            self._writers.discard(writer)
            self._names.pop(writer, None)
            for ident, (link, future) in list(self._collects.items()):
                if link is writer:  # it will not answer: the scrape need not wait for it
                    del self._collects[ident]
                    future.cancel()
            if self.scaler is not None:  # the process went away holding them: unfinished
                end_held(self.scaler.tracker, held, self.registry)
            for task in tasks:
                task.cancel()
            writer.close()

    async def _peers(self, ident: int, writer: asyncio.StreamWriter) -> None:
        """Every other gateway process's exposition, asked for at once and waited for
        ``collect_timeout`` at most; those that did not answer are named."""
        asked: list[tuple[int, str, asyncio.Future[bytes]]] = []
        loop = asyncio.get_running_loop()
        for link, name in list(self._names.items()):
            if link is writer or link.is_closing():
                continue
            collect = next(self._collect_ids)
            future: asyncio.Future[bytes] = loop.create_future()
            self._collects[collect] = (link, future)
            link.write(pack({"op": "collect", "id": collect}))
            asked.append((collect, name, future))
        if asked:
            await asyncio.wait([f for _, _, f in asked], timeout=self.collect_timeout)
        peers, missing = [], []
        for collect, name, future in asked:
            self._collects.pop(collect, None)  # a late answer is then ignored
            if future.done() and not future.cancelled():
                peers.append([name, future.result()])
            else:
                future.cancel()
                missing.append(name)
        if not writer.is_closing():
            writer.write(pack({"id": ident, "ok": True, "peers": peers, "missing": missing}))

    async def _execute(self, message: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        ident = int(message.get("id", 0))
        self.calls += 1
        node_id = str(message.get("node"))
        if node_id not in self.registry or self.registry.state(node_id) is not NodeState.ACTIVE:
            missing = f"local worker {node_id!r} is not serving in the shared pool"
            reply = {"id": ident, "ok": False, "status": 503, "retryable": True,
                     "message": missing}  # fmt: skip
        else:
            node = self.registry.get(node_id)
            request = AIRequest(
                model=str(message.get("model") or ""),
                payload=JSONBody(bytes(message.get("body") or b"{}")),
                kind=RequestKind(str(message.get("kind", "embedding"))),
                priority=int(message.get("priority") or 0),
            )
            self.registry.acquire(node_id)  # a drain waits for it
            try:
                response = await self._route.execute(node, request)
            except (PRSMError, OSError) as exc:
                reply = error_reply(ident, exc)
            else:
                raw = response.raw if response.raw is not None else orjson.dumps(response.content)
                reply = {"id": ident, "ok": True, "body": raw, "tokens": response.tokens}
            finally:
                self.registry.release(node_id)
        if not writer.is_closing():
            writer.write(pack(reply))

    def _load(self, events: Any, held: dict[str | None, int]) -> None:
        """Play a gateway process's load events into the scaler's tracker (``play_load``:
        each request in service is held against its node in this host's registry where it has
        it, so that a drain waits for it); ``held``: the connection's, per node."""
        if self.scaler is None or self.remote is None:
            raise ValueError("load reported, but this host scales no remote replicas")
        play_load(check_load_events(events), self.scaler.tracker, held, self.registry)


def pool_socket(environ: Callable[[str], str | None] = os.environ.get) -> str | None:
    """The shared pool's socket this gateway process was given, if any."""
    return environ(POOL_SOCKET_ENV) or None


__all__ = ["POOL_SOCKET_ENV", "PoolHost", "RemoteScaler", "pool_socket"]
