"""Local model workers behind the gateway: started with the app, stopped with it.

With ``workers.enabled`` (the default) the gateway starts ``workers.count`` worker processes
holding the bundled embedding model when the app starts, adds one node per worker (tagged
``meta.upstream = "local"``) and routes those nodes to the batching
:class:`~prsm.performance.workers.LocalModelUpstream`; everything else still goes over HTTP.

With ``orchestrator.auto_scaling`` the workers are scaled ahead of demand: a
:class:`~prsm.performance.scaling.PredictiveScaler` (the ``scaling`` section) over a
:class:`~prsm.performance.scaling.LocalProcessBackend` adds workers (each a node) and drains
and stops them, fed by a :class:`~prsm.performance.scaling.TrackedUpstream` on the local route;
``/admin/scaling`` shows its steps.

Under ``prsm-perf serve --workers N`` (N > 1) the serving parent starts that pool once and
every gateway process reaches it over a Unix socket (:mod:`.shared_pool`; the socket is named
by ``PRSM_LOCAL_POOL_SOCKET``): one pool, one batcher per device, for all N processes.
With ``orchestrator.auto_scaling`` the parent scales that shared pool (the same scaler, in
the parent, seeing every process's requests) and pushes each change of its serving workers
to the gateway processes, which add and remove the nodes as they are told; each gateway
process's ``/admin/scaling`` shows the parent's scaler (:class:`PoolScalerView`, told its
snapshot at each step).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..upstreams._base import Upstream
from ..upstreams._dispatch import DispatchUpstream
from ..workers._settings import WorkerSettings
from ._pool_client import SharedPoolUpstream
from ._process_metrics import all_processes, process_name
from ._shared_pool import pool_socket

if TYPE_CHECKING:
    from ..clock import Clock
    from ..gateway._app import GatewayApp
    from ..monitoring._registry import MetricsRegistry
    from ..routing._node import NodeSpec
    from ..routing._registry import NodeRegistry
    from ..scaling._predictive import PredictiveSettings
    from ..scaling._scaler import PredictiveScaler
    from ..workers._pool import LocalWorkerPool
    from ..workers._upstream import LocalModelUpstream

LOCAL = "local"


def _dispatcher(app: GatewayApp) -> DispatchUpstream:
    upstream = app.perf.upstream
    if not isinstance(upstream, DispatchUpstream):
        raise TypeError(f"local workers need a DispatchUpstream, got {type(upstream).__name__}")
    return upstream


def attach_local_workers(
    app: GatewayApp, settings: WorkerSettings, scaling: PredictiveSettings | None = None
) -> None:
    """Add start/stop hooks to ``app`` that run the local worker pool, or reach the one the
    serving parent shares (no-op when disabled); ``scaling``: scale the pool with these
    settings (not the shared pool)."""
    if not settings.enabled or settings.count <= 0:
        return
    shared = pool_socket()
    if shared is not None:  # the serving parent runs (and, with scaling, scales) the pool
        attach_to_parent(app, shared, settings)
        return
    held: list[LocalWorkerPool] = []

    async def start_workers(app: GatewayApp) -> None:
        from ..workers import start_default_workers

        pool, nodes, local = await start_default_workers(settings, metrics=app.perf.metrics)
        held.append(pool)
        route: Upstream = local
        if scaling is not None:
            from ..scaling._tracked import TrackedUpstream

            perf = app.perf
            scaler = local_scaler(pool, local, scaling, perf.registry, clock=perf.clock,
                                  metrics=perf.metrics)  # fmt: skip
            route = TrackedUpstream(local, scaler.tracker, clock=app.perf.clock)
            app.perf.attach_scaler(scaler)
        _dispatcher(app).add_route(LOCAL, route)
        app.perf.poller.add_source(local, "worker")  # cpu, memory, queue of each worker
        for node in nodes:
            app.perf.add_node(node)

    async def stop_workers(app: GatewayApp) -> None:
        # the orchestrator's close() already closed the upstreams, the local one included
        while held:
            await held.pop().close()

    app.on_startup.append(start_workers)
    app.on_shutdown.append(stop_workers)


def local_scaler(
    pool: LocalWorkerPool,
    local: LocalModelUpstream,
    settings: PredictiveSettings,
    registry: NodeRegistry,
    *,
    clock: Clock,
    metrics: MetricsRegistry,
) -> PredictiveScaler:
    """The scaler of a local worker pool (a gateway's own, or the one ``serve --workers N``
    shares): each worker a replica of ``local``'s model and a node of ``registry``, as many
    requests at once as a worker's node takes."""
    from ..scaling._local import LocalProcessBackend
    from ..scaling._scaler import PredictiveScaler

    backend = LocalProcessBackend(pool, local, registry, clock=clock)
    nodes = pool.nodes()
    return PredictiveScaler(
        backend,
        settings,
        concurrency=nodes[0].max_concurrency if nodes else 1,
        clock=clock,
        metrics=metrics,
    )


class PoolScalerView:
    """A gateway process's view of the scaler the serving parent runs over the shared pool:
    the parent's last snapshot (pushed at each step), shown as this process's
    ``/admin/scaling``. The orchestrator starts and closes its scaler; this one runs in the
    parent, so there is nothing to start or stop here."""

    def __init__(self) -> None:
        self.latest: dict[str, Any] | None = None
        self.pid: int | None = None  # the serving parent's

    def update(self, snapshot: dict[str, Any], pid: int) -> None:
        self.latest, self.pid = snapshot, pid

    def start(self) -> None:
        """Nothing runs here: the serving parent steps the scaler."""

    async def close(self) -> None:
        """Nothing to stop here: the serving parent stops the scaler with the pool."""

    def snapshot(self, last: int = 50) -> dict[str, Any]:
        where = f"the serving parent (pid {self.pid})" if self.pid else "the serving parent"
        if self.latest is None:
            return {"scaled_by": where, "steps": [], "actions": [],
                    "note": "the serving parent has not reported its scaler yet"}  # fmt: skip
        view = dict(self.latest, scaled_by=where)
        for key in ("steps", "actions"):
            items = view.get(key) or []
            view[key] = items[-last:] if last > 0 else []
        return view


def attach_to_parent(
    app: GatewayApp,
    path: str,
    settings: WorkerSettings | None,
    on_link: Callable[[GatewayApp, SharedPoolUpstream], None] | None = None,
    *,
    follow: bool = False,
) -> None:
    """Join the serving parent at the socket ``path`` when ``app`` starts: its local worker
    pool (``settings``; ``None``: the parent holds none) as the ``local`` route, its
    metrics, and its scaler's snapshots as this process's scaler (with auto-scaling);
    ``on_link`` is then called with the connection (to report remote replicas' load).
    The nodes the parent pushes are followed with a local pool, or with ``follow`` (the
    parent's Ray replicas). With neither a pool nor ``on_link`` the parent holds nothing for
    this process but the link to the other gateway processes, through which ``/metrics``
    serves every process's metrics (:mod:`._process_metrics`)."""
    known: set[str] = set()
    holds = settings is not None or on_link is not None  # a pool, or replicas it scales
    view = PoolScalerView() if app.perf.settings.auto_scaling and holds else None

    def follow_nodes(nodes: list[NodeSpec]) -> None:
        """The pool's serving workers, at each (re)connect and each change: new ones join
        the registry; one no longer announced (being drained, or gone) leaves it, and the
        requests it holds finish."""
        now = {n.id for n in nodes}
        for node in nodes:
            app.perf.registry.upsert(node)
        for gone in known - now:
            if gone in app.perf.registry:
                app.perf.remove_node(gone)
        known.clear()
        known.update(now)

    async def join_pool(app: GatewayApp) -> None:
        told = view.update if view is not None else None
        timeout = settings.batch_timeout if settings is not None else 120.0
        followed = follow_nodes if settings is not None or follow else None
        me = process_name()
        upstream = SharedPoolUpstream(path, timeout=timeout, on_nodes=followed, on_scaling=told,
                                      instance=me, on_collect=app.metrics.exposition)  # fmt: skip
        await upstream.connect()
        app.combine_metrics = all_processes(me, upstream.peers)  # every process's, labelled
        if holds:
            app.metric_sources.append(upstream.metrics)  # the pool's, batcher's, scaler's
        if view is not None:  # before the orchestrator starts: no "nothing scales" warning
            app.perf.attach_scaler(view)
        if settings is not None:
            _dispatcher(app).add_route(LOCAL, upstream)
        else:  # no route holds it: the orchestrator's close() would not close it
            app.on_shutdown.append(lambda app: upstream.aclose())
        if on_link is not None:
            on_link(app, upstream)

    app.on_startup.append(join_pool)  # closed with the other upstreams by perf.close()
