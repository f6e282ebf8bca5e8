"""The gateway process's side of the shared local model pool (:mod:`._shared_pool` has the
wire and the host): one connection to the serving parent's socket, many calls in flight,
matched by id; the pool's pushed changes (``nodes``, ``scaling``) are handed to callbacks.
:class:`LoadReporter` sends the load of the remote replicas the parent scales to the parent's
tracker."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Hashable
from typing import Any

import orjson

from ..errors import UpstreamError, UpstreamUnavailableError
from ..routing._node import NodeSpec
from ..types import AIRequest, JSONBody, Response
from ..workers._protocol import FrameError, pack, read_message

log = logging.getLogger(__name__)


class SharedPoolUpstream:
    """The ``local`` upstream of a gateway process whose pool lives in the serving parent."""

    def __init__(
        self,
        path: str,
        *,
        timeout: float = 120.0,
        on_nodes: Callable[[list[NodeSpec]], None] | None = None,
        on_scaling: Callable[[dict[str, Any], int], None] | None = None,
        instance: str | None = None,
        on_collect: Callable[[], bytes] | None = None,
    ) -> None:
        self.path = path
        self.timeout = timeout
        self.on_nodes = on_nodes  # told the pool's serving nodes at connect and every change
        self.on_scaling = on_scaling  # told the host's scaler snapshot (and pid) at each step
        self.instance = instance  # this gateway process's name, given in hello
        self.on_collect = on_collect  # this process's exposition, when the host collects
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._connecting: asyncio.Lock | None = None
        self._hello: asyncio.Future[dict[str, Any]] | None = None

    async def connect(self) -> list[NodeSpec]:
        """Connect (again) and return the pool's nodes, tagged for the ``local`` route."""
        reader, writer = await asyncio.open_unix_connection(self.path)
        self._hello = asyncio.get_running_loop().create_future()
        self._writer = writer
        self._reader_task = asyncio.create_task(self._read(reader))
        hello: dict[str, Any] = {"op": "hello"}
        if self.instance is not None:
            hello["instance"] = self.instance
        writer.write(pack(hello))
        await writer.drain()
        hello = await asyncio.wait_for(self._hello, self.timeout)
        nodes = [NodeSpec(**n) for n in hello.get("nodes", [])]
        if self.on_nodes is not None:
            self.on_nodes(nodes)
        return nodes

    async def _ensure(self) -> asyncio.StreamWriter:
        if self._writer is not None and not self._writer.is_closing():
            return self._writer
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is None or self._writer.is_closing():
                await self.connect()
        assert self._writer is not None
        return self._writer

    async def _read(self, reader: asyncio.StreamReader) -> None:
        why = "closed"
        try:
            while True:
                message = await read_message(reader)
                if message.get("op") == "nodes":
                    if self._hello is not None and not self._hello.done():
                        self._hello.set_result(message)
                    elif self.on_nodes is not None:  # the pool scaled
                        self.on_nodes([NodeSpec(**n) for n in message.get("nodes", [])])
                    continue
                if message.get("op") == "scaling":
                    if self.on_scaling is not None:
                        self.on_scaling(message.get("scaling") or {}, int(message.get("pid", 0)))
                    continue
                if message.get("op") == "collect":  # another process's /metrics asks
                    text = self.on_collect() if self.on_collect is not None else b""
                    self.send_now({"op": "collected", "id": message.get("id"), "text": text})
                    continue
                future = self._pending.pop(int(message.get("id", -1)), None)
                if future is not None and not future.done():
                    future.set_result(message)
        except (asyncio.IncompleteReadError, ConnectionError, FrameError) as exc:
            why = type(exc).__name__
        finally:
            self._lost(why)

    def _lost(self, why: str) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = None
        pending, self._pending = self._pending, {}
        error = ConnectionResetError(f"the shared model pool's connection was lost ({why})")
        for future in pending.values():
            if not future.done():
                future.set_exception(error)
        if self._hello is not None and not self._hello.done():
            self._hello.set_exception(error)

    async def call(self, message: dict[str, Any], limit: float | None = None) -> dict[str, Any]:
        """Send ``message`` (an ``id`` is added) and wait for its answer."""
        writer = await self._ensure()
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        try:
            writer.write(pack({**message, "id": ident}))
            await writer.drain()
            return await asyncio.wait_for(future, limit or self.timeout)
        finally:
            self._pending.pop(ident, None)

    def send_now(self, message: dict[str, Any]) -> bool:
        """Queue ``message``, which has no answer, on the open connection; False if none."""
        writer = self._writer
        if writer is None or writer.is_closing():
            return False
        writer.write(pack(message))
        return True

    async def send(self, message: dict[str, Any]) -> None:
        """Send ``message``, which has no answer (connecting again if the link was lost)."""
        writer = await self._ensure()
        writer.write(pack(message))
        await writer.drain()

    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        payload = request.payload
        body = payload.raw if isinstance(payload, JSONBody) else orjson.dumps(dict(payload))
        message = {"op": "execute", "node": str(node.meta.get("worker", node.id)),
                   "kind": request.kind.value, "model": request.model,
                   "priority": request.priority, "body": body}  # fmt: skip
        try:
            reply = await self.call(message, node.timeout)
        except (OSError, TimeoutError) as exc:
            raise UpstreamUnavailableError(
                node.id, f"shared model pool unreachable: {exc}", status=503
            ) from exc
        if not reply.get("ok"):
            status = reply.get("status")
            message_text = str(reply.get("message", "shared pool call failed"))
            if status == 503:
                raise UpstreamUnavailableError(node.id, message_text, status=503)
            raise UpstreamError(
                node.id,
                message_text,
                status=int(status) if status is not None else None,
                retryable=bool(reply.get("retryable")),
            )
        raw = bytes(reply["body"])
        return Response(raw=raw, tokens=int(reply.get("tokens") or 0))

    async def metrics(self, limit: float = 5.0) -> bytes:
        """The pool's Prometheus exposition (its workers', batcher's and scaler's metrics,
        which live in the serving parent)."""
        reply = await self.call({"op": "metrics"}, limit)
        return bytes(reply["text"])

    async def peers(self, limit: float = 5.0) -> tuple[list[tuple[str, bytes]], list[str]]:
        """The other gateway processes' expositions (``(name, text)``) and the names of those
        that did not answer the host in time."""
        reply = await self.call({"op": "peers"}, limit)
        peers = [(str(name), bytes(text)) for name, text in reply.get("peers") or ()]
        return peers, [str(name) for name in reply.get("missing") or ()]

    async def stats(self) -> dict[str, Any]:
        reply = await self.call({"op": "stats"})
        stats: dict[str, Any] = reply.get("stats", {})
        return stats

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.close()
        task = self._reader_task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class LoadReporter:
    """A tracker's hooks (:class:`~prsm.performance.scaling._tracked.LoadHooks`) in a gateway
    process whose replicas the serving parent scales: each call is noted, and the calls of
    one turn of the event loop go to the parent in one ``{"op": "load", "events": [...]}``
    (``["a", user]``, ``["s", waited, node]``, ``["f", service_time, error, node]``), where
    they are played into its scaler's tracker in order (and held against the node, so that
    a drain waits for them). Events that cannot be sent (the parent is unreachable) are
    logged with their count; the parent finishes the requests a lost connection still held
    as unfinished."""

    def __init__(self, link: SharedPoolUpstream) -> None:
        self.link = link
        self.sent = 0  # events delivered to the socket
        self.lost = 0  # events that could not be sent
        self._events: list[list[Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def arrived(self, user: Hashable | None = None) -> None:
        self._note(["a", user if user is None else str(user)])

    def started(self, waited: float = 0.0, node: str | None = None) -> None:
        self._note(["s", waited, node])

    def finished(
        self, service_time: float, *, error: bool = False, node: str | None = None
    ) -> None:
        self._note(["f", service_time, error, node])

    def _note(self, event: list[Any]) -> None:
        if not self._events:
            asyncio.get_running_loop().call_soon(self._flush)
        self._events.append(event)

    def _flush(self) -> None:
        events, self._events = self._events, []
        if self.link.send_now({"op": "load", "events": events}):
            self.sent += len(events)
            return
        task = asyncio.create_task(self._send(events))  # connect again first
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, events: list[list[Any]]) -> None:
        try:
            await self.link.send({"op": "load", "events": events})
        except OSError as exc:
            self.lost += len(events)
            log.warning(
                "%d load event(s) for the serving parent's scaler were not sent (%d so far): %s",
                len(events), self.lost, exc,
            )  # fmt: skip
        else:
            self.sent += len(events)
