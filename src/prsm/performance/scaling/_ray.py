"""``RayBackend``: replicas as Ray actors, each running an OpenAI-compatible server, each
registered as a node the gateway routes to (over HTTP).

For users who outgrow one machine: Ray places each replica actor on a node of the cluster
with the resources asked (``actor_options``: ``num_cpus``, ``num_gpus``, ``resources``…);
the actor starts ``command`` (any OpenAI-compatible server: ``prsm-perf serve``, vLLM,
``prsm-perf upstream-sim``…; ``{port}`` and ``{host}`` in it are filled in) on a free port of
its node and reports where it listens; the backend registers ``http://NODE_IP:PORT/v1`` as a
node. Scaling down drains the node (no new requests; the ones it holds finish), then stops
the server and kills the actor. Needs the ``ray`` extra: ``pip install 'prsm-performance[ray]'``.

``prsm-perf serve`` runs it from the config's ``ray`` section (:class:`RayScalingSettings`).
When Ray is not initialised yet, the backend starts it (a local instance, or the cluster at
``address``) in a worker thread, so the event loop is not held for the seconds that takes;
Ray then installs no SIGTERM handler of its own (it only does so from the main thread), and
the gateway keeps its graceful shutdown. A backend that started Ray shuts it down on
:meth:`RayBackend.close`, after its replicas have drained and stopped.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..clock import Clock, SystemClock
from ..errors import ConfigError, DependencyMissingError, ScalingError
from ..routing._node import NodeSpec
from ..routing._registry import NodeRegistry
from ._drain import NodeReplicas
from ._types import check_positive

log = logging.getLogger("prsm.performance.scaling")


class ReplicaServer:
    """The body of one replica actor: a server process on a free port of the actor's node."""

    def __init__(
        self, command: Sequence[str], host: str = "127.0.0.1", env: Mapping[str, str] | None = None
    ) -> None:
        self.command = list(command)
        self.host = host
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, timeout: float = 120.0) -> tuple[str, int]:
        """Start the server and wait until it accepts connections; ``(address, port)``."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((self.host, 0))
            self.port = int(s.getsockname()[1])
        cmd = [c.format(port=self.port, host=self.host) for c in self.command]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **self.env},
        )
        address = self.host if self.host not in ("0.0.0.0", "") else _node_ip()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                err = (
                    self.proc.stderr.read().decode(errors="replace")[-800:]
                    if self.proc.stderr
                    else ""
                )
                raise RuntimeError(f"{cmd[0]} exited with code {code} before listening: {err}")
            try:
                with socket.create_connection((address, self.port), timeout=0.5):
                    return address, self.port
            except OSError:
                time.sleep(0.05)
        self.stop(0.0)
        raise RuntimeError(f"{cmd[0]} did not listen on port {self.port} within {timeout:.0f}s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 5.0) -> int | None:
        """Terminate the server (kill it after ``grace`` seconds); its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.proc.returncode


def _node_ip() -> str:
    import ray

    return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise DependencyMissingError("ray", "ray", "the Ray scaling backend") from exc
    return ray


class RayBackend(NodeReplicas):
    """See the module docstring. ``node`` is the template of every replica's node (models,
    capabilities, limits); each gets its own id and url, and ``meta.upstream = route`` (the
    gateway's upstream that reaches it: ``"http"``, or a route added for these nodes).
    ``address`` is passed to ``ray.init`` when Ray is not initialised yet (``None``: a local
    instance, sized by ``init_options``)."""

    name = "ray"

    def __init__(
        self,
        command: Sequence[str],
        registry: NodeRegistry,
        node: NodeSpec,
        *,
        actor_options: Mapping[str, Any] | None = None,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        address: str | None = None,
        init_options: Mapping[str, Any] | None = None,
        ready_timeout: float = 120.0,
        drain_timeout: float = 120.0,
        poll: float = 0.05,
        clock: Clock | None = None,
        prefix: str = "ray-replica",
        route: str = "http",
    ) -> None:
        if not command:
            raise ScalingError("ray", "command: give the server command each replica runs")
        check_positive("ready_timeout", ready_timeout)
        super().__init__(registry, clock or SystemClock(), drain_timeout=drain_timeout, poll=poll)
        self.command = list(command)
        self.template = node
        self.actor_options = dict(actor_options or {"num_cpus": 1})
        self.host = host
        self.env = dict(env or {})
        self.address = address
        self.init_options = dict(init_options or {})
        self.ready_timeout = ready_timeout
        self.prefix = prefix
        self.route = route
        self._owns_ray = False  # this backend started Ray: it shuts it down on close
        self._ids = itertools.count()
        self._actors: dict[str, Any] = {}  # node id -> actor handle (serving)
        self._stopping: dict[str, Any] = {}  # node id -> actor handle (draining)
        self._actor_class: Any = None

    async def _ensure_ray(self) -> Any:
        ray = _ray()
        if not ray.is_initialized():  # seconds: in a thread, not on the event loop
            await asyncio.to_thread(ray.init, address=self.address, **self.init_options)
            self._owns_ray = True
        if self._actor_class is None:
            self._actor_class = ray.remote(ReplicaServer)
        return ray

    def _serving(self) -> list[str]:
        return list(self._actors)

    def _victims(self, n: int) -> list[str]:
        newest = list(self._actors)[-n:][::-1]
        for node_id in newest:
            self._stopping[node_id] = self._actors.pop(node_id)
        return newest

    async def _start_one(self) -> str:
        ray = await self._ensure_ray()
        node_id = f"{self.prefix}-{next(self._ids)}"
        actor = self._actor_class.options(**self.actor_options).remote(
            self.command, self.host, self.env
        )
        try:
            address, port = await asyncio.wait_for(
                actor.start.remote(self.ready_timeout), self.ready_timeout + 30.0
            )
        except (ray.exceptions.RayError, TimeoutError) as exc:
            ray.kill(actor)
            raise ScalingError(self.name, f"replica {node_id} did not start: {exc}") from exc
        spec = replace(
            self.template,
            id=node_id,
            url=f"http://{address}:{port}/v1",
            meta={**self.template.meta, "upstream": self.route, "ray_actor": node_id},
        )
        self._actors[node_id] = actor
        self.registry.upsert(spec)
        return node_id

    async def _stop(self, node_id: str) -> None:
        ray = _ray()
        actor = self._stopping.pop(node_id)
        try:
            await actor.stop.remote()
        except ray.exceptions.RayError as exc:  # the actor is gone already: nothing to stop
            log.warning("Ray replica %s: stopping its server failed: %s", node_id, exc)
        ray.kill(actor)

    async def close(self) -> None:
        """Drain and stop every replica; then shut Ray down if this backend started it."""
        await self.scale_to(0)
        await self.wait_drained()
        if self._owns_ray:
            self._owns_ray = False
            await asyncio.to_thread(_ray().shutdown)


def _default_actor_options() -> dict[str, Any]:
    return {"num_cpus": 1}


@dataclass(frozen=True, slots=True)
class RayScalingSettings:
    """The config's ``ray`` section: with ``orchestrator.auto_scaling``, ``prsm-perf serve``
    scales Ray actors (a :class:`RayBackend`) instead of its local workers.

    Each replica is an actor running ``command`` (empty: off), an OpenAI-compatible server
    whose arguments may hold ``{port}`` (required: the free port the actor found) and
    ``{host}`` (``host``, the address it binds). Each replica is registered as a node made
    from ``node``, a node's settings as in ``nodes`` less ``id`` and ``url`` (``models`` is
    required). The scaler sizes the replicas for ``replica_concurrency`` requests at once each
    (the node's ``max_concurrency``, 64 unless ``node`` sets it, is how many the gateway lets
    it hold before it is full). ``actor_options`` go to each actor
    (``num_cpus``, ``num_gpus``, ``resources``…, checked by Ray when the gateway is built).
    ``address`` is the Ray cluster to join (``"auto"``, ``"ray://HOST:10001"``); ``None``
    starts a local instance with ``num_cpus`` CPUs (``None``: all). A replica must listen
    within ``ready_timeout`` seconds; one removed is drained for at most ``drain_timeout``."""

    command: tuple[str, ...] = ()
    node: Mapping[str, Any] = field(default_factory=dict)
    replica_concurrency: int = 8
    actor_options: Mapping[str, Any] = field(default_factory=_default_actor_options)
    address: str | None = None
    num_cpus: int | None = None
    host: str = "127.0.0.1"
    ready_timeout: float = 120.0
    drain_timeout: float = 120.0
    prefix: str = "ray-replica"

    def __post_init__(self) -> None:
        rc = self.replica_concurrency
        if isinstance(rc, bool) or not isinstance(rc, int) or rc < 1:
            raise ConfigError("replica_concurrency", f"must be a whole number >= 1, got {rc!r}")
        n = self.num_cpus
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ConfigError("num_cpus", f"must be a whole number >= 1, got {n!r}")
        check_positive("ready_timeout", self.ready_timeout)
        check_positive("drain_timeout", self.drain_timeout)
        if not self.prefix:
            raise ConfigError("prefix", "must not be empty (it names each replica's node)")
        if not self.command:
            return
        if not any("{port}" in part for part in self.command):
            raise ConfigError("command", "must hold {port}: each replica listens on its own port")
        for key in ("id", "url"):
            if key in self.node:
                raise ConfigError(f"node.{key}", "is each replica's own: leave it out")
        if not self.node.get("models"):
            raise ConfigError("node.models", "required: the models every replica serves")
        if self.address is not None and self.num_cpus is not None:
            raise ConfigError("num_cpus", "sizes a local instance: not with address")

    @property
    def enabled(self) -> bool:
        return bool(self.command)

    def init_options(self) -> dict[str, Any]:
        """``ray.init``'s options besides ``address``: a local instance's size, no dashboard,
        the actors' output kept out of the gateway's."""
        extra: dict[str, Any] = {"num_cpus": self.num_cpus} if self.address is None else {}
        return {**extra, "include_dashboard": False, "log_to_driver": False}
