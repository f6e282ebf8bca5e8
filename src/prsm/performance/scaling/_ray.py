"""``RayBackend``: replicas as Ray actors, each running an OpenAI-compatible server, each
registered as a node the gateway routes to (over HTTP).

For users who outgrow one machine: Ray places each replica actor on a node of the cluster
with the resources asked (``actor_options``: ``num_cpus``, ``num_gpus``, ``resources``…);
the actor starts ``command`` (any OpenAI-compatible server: ``prsm-perf serve``, vLLM,
``prsm-perf upstream-sim``…; ``{port}`` and ``{host}`` in it are filled in) on a free port of
its node and reports where it listens; the backend registers ``http://NODE_IP:PORT/v1`` as a
node. Scaling down drains the node (no new requests; the ones it holds finish), then stops
the server and kills the actor. Needs the ``ray`` extra: ``pip install 'prsm-performance[ray]'``.
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
from dataclasses import replace
from typing import Any

from ..clock import Clock, SystemClock
from ..errors import DependencyMissingError, ScalingError
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
    capabilities, limits); each gets its own id and url. ``address`` is passed to
    ``ray.init`` when Ray is not initialised yet (``None``: a local instance, sized by
    ``init_options``)."""

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
        self._ids = itertools.count()
        self._actors: dict[str, Any] = {}  # node id -> actor handle (serving)
        self._stopping: dict[str, Any] = {}  # node id -> actor handle (draining)
        self._actor_class: Any = None

    def _ensure_ray(self) -> Any:
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=self.address, **self.init_options)
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
        ray = self._ensure_ray()
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
            meta={**self.template.meta, "upstream": "http", "ray_actor": node_id},
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
        """Drain and stop every replica."""
        await self.scale_to(0)
        await self.wait_drained()
