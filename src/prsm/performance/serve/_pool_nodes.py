"""The shared pool host's state, nodes and scaler: the base of :class:`~._shared_pool.PoolHost`.

:class:`PoolNodes` holds what the host serves (its registry of workers and replicas, the
local pool's upstream, the connected gateway processes) and starts its scaler; it pushes
each change of the serving nodes, and each scaling step, to every gateway process.
:mod:`._shared_pool` runs the host and answers the gateway processes' messages.

With auto-scaling on, the host also runs the pool's
:class:`~prsm.performance.scaling.PredictiveScaler` (its tracker sees every process's
requests, since they all pass through the host) over a registry of its own. Each change of
the serving workers is pushed to every gateway process as an unsolicited ``{"op": "nodes"}``
(the serving nodes: a worker being drained is left out at once, so the gateways stop
sending it work while the host waits for what it holds). A call for a worker that is not
serving is answered with a retryable 503. After ``hello`` and after each scaling step the
host also pushes ``{"op": "scaling", "scaling": <the scaler's snapshot>, "pid"}``, which
each gateway process shows as its ``/admin/scaling``.

With a ``kubernetes`` or ``ray`` section (and auto-scaling), the host runs that section's
scaler instead (the local workers, if any, keep ``workers.count``), and may hold no local
pool at all. Ray replicas are nodes of the host's registry, pushed to the gateway processes
with the local workers (``{"op": "nodes"}``, each node in full: its URL, limits and route).
The replicas' requests do not pass through the host: each gateway process sends the load it
sees as ``{"op": "load", "events": [...]}`` (``["a", user]`` arrived, ``["s", waited, node]``
started, ``["f", service_time, error, node]`` finished; see
:class:`~._pool_client.LoadReporter`), played into the scaler's tracker in order, so it sees
every process's requests; a request in service is also held against its node in the host's
registry, so that draining a Ray replica waits for what the gateway processes hold. Requests
a lost connection still held in service are finished as unfinished (an error). Other pods'
reports (``{"op": "pods", "report"}``, checked already) go to its ``PodLoadReceiver``. On a
candidate of a leader election (``standby``) the host alone stands for the Lease, scales while
it leads, pushes its snapshot when who leads changes (the gateway processes answer reports
by it) and answers ``{"op": "history", "since", "sessions"}`` with ``"status"`` and ``"body"`` (the
history a standby fetches, :mod:`._pod_warm`).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..monitoring._registry import MetricsRegistry
from ..routing._node import NodeSpec, NodeState
from ..routing._registry import NodeRegistry
from ..scaling._pods import PodLoadReceiver
from ..scaling._tracked import TrackedUpstream
from ..workers._protocol import pack
from ..workers._settings import WorkerSettings
from ._pool_wire import node_dict

if TYPE_CHECKING:
    from ..clock import Clock
    from ..scaling._pods import ScalingReportSettings
    from ..scaling._predictive import PredictiveSettings
    from ..scaling._scaler import PredictiveScaler
    from ._pod_standby import Standby

#: builds the scaler of replicas beyond this host (a Deployment, Ray actors) over the host's
#: registry, clock and metrics
RemoteScaler = Callable[[NodeRegistry, "Clock", MetricsRegistry], "PredictiveScaler"]


class PoolNodes:
    """The host's state, its nodes and its scaler, and the pushes of their changes (see the
    module's text); :class:`~._shared_pool.PoolHost` runs it and serves it."""

    def __init__(
        self,
        settings: WorkerSettings | None,
        scaling: PredictiveSettings | None = None,
        remote: RemoteScaler | None = None,
        *,
        collect_timeout: float = 3.0,
        pods: tuple[ScalingReportSettings, str] | None = None,
        standby: Standby | None = None,
    ) -> None:
        self.settings = settings
        self.standby = standby  # a candidate's: its scaler scales while it holds the Lease
        self.pods = pods  # the other gateway pods' reports this host's scaler takes, if any
        self.receiver: PodLoadReceiver | None = None
        self.scaling = scaling
        self.remote = remote
        self.collect_timeout = collect_timeout
        self.scaler: Any = None  # the PredictiveScaler, with scaling
        self.registry = NodeRegistry()  # the workers, as nodes: what the host serves
        self.metrics = MetricsRegistry()  # the pool's, the batcher's and the scaler's
        self.folder = Path(tempfile.mkdtemp(prefix="prsm-pool-"))  # 0700
        self.path = str(self.folder / "pool.sock")
        self.clients = 0
        self.calls = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._local: Any = None
        self._route: Any = None  # the local upstream, tracked when scaling
        self._pool: Any = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._announcing = False
        self._names: dict[asyncio.StreamWriter, str] = {}  # the gateway processes, by link
        self._collects: dict[int, tuple[asyncio.StreamWriter, asyncio.Future[bytes]]] = {}
        self._collect_ids = itertools.count(1)

    def _start_scaler(self, scaling: PredictiveSettings) -> None:
        from ..clock import SystemClock

        clock = SystemClock()
        if self.remote is not None:
            self.scaler = self.remote(self.registry, clock, self.metrics)
            if self.standby is not None:  # one elector per pod: here
                self.scaler = self.standby(self.scaler, clock, self.metrics)
                self.scaler.listen(lambda: self._scaled(None))  # who leads, the history
        elif self._local is not None:
            from ._local_workers import local_scaler

            self.scaler = local_scaler(self._pool, self._local, scaling, self.registry,
                                       clock=clock, metrics=self.metrics)  # fmt: skip
            self._route = TrackedUpstream(self._local, self.scaler.tracker, clock=clock)
        if self.scaler is not None:
            self.scaler.loop.listeners.append(self._scaled)
            if self.pods is not None and self.remote is not None:  # a Deployment's scaler
                self.receiver = PodLoadReceiver(self.scaler.tracker, *self.pods, clock=clock,
                                                metrics=self.metrics)  # fmt: skip
                self.receiver.on_change = lambda: self._scaled(None)  # pods joined, lost
                if self.standby is not None:  # gated while it does not lead, reset at a term's end
                    self.scaler.take_reports(self.receiver)
                self.receiver.resend = getattr(self.scaler, "resend", None)  # late reports

    def serving(self) -> list[NodeSpec]:
        """The workers that take new calls (not those being drained)."""
        return [e.spec for e in self.registry.entries() if e.state is NodeState.ACTIVE]

    def _changed(self, node_id: str, change: str) -> None:
        if change in ("added", "removed", "state") and not self._announcing:
            self._announcing = True  # one push for a burst of changes
            asyncio.get_running_loop().call_soon(self._announce)

    def _announce(self) -> None:
        self._announcing = False
        message = pack({"op": "nodes", "nodes": [node_dict(n) for n in self.serving()]})
        for writer in self._writers:
            if not writer.is_closing():
                writer.write(message)

    def _scaling_message(self) -> bytes:
        snapshot = self.scaler.snapshot()
        if self.receiver is not None:  # the gateway pods that report their load to it
            snapshot = {**snapshot, "pods": self.receiver.snapshot()}
        return pack({"op": "scaling", "scaling": snapshot, "pid": os.getpid()})

    def _scaled(self, step: object) -> None:
        message = self._scaling_message()
        for writer in self._writers:
            if not writer.is_closing():
                writer.write(message)

    def stats(self) -> dict[str, Any]:
        """Clients connected, calls served, and the pool's own stats (per worker)."""
        local = self._local
        return {"clients": self.clients, "calls": self.calls,
                "workers": local.stats() if local is not None else {}}  # fmt: skip
