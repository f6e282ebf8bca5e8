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
That shared pool is not scaled: with ``orchestrator.auto_scaling`` each gateway process logs
a warning and the pool keeps ``workers.count`` workers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..upstreams._base import Upstream
from ..upstreams._dispatch import DispatchUpstream
from ..workers._settings import WorkerSettings
from ._shared_pool import SharedPoolUpstream, pool_socket

if TYPE_CHECKING:
    from ..gateway._app import GatewayApp
    from ..scaling._predictive import PredictiveSettings
    from ..scaling._scaler import PredictiveScaler
    from ..workers._pool import LocalWorkerPool
    from ..workers._upstream import LocalModelUpstream

LOCAL = "local"

log = logging.getLogger(__name__)


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
    if shared is not None:
        if scaling is not None:
            log.warning(
                "orchestrator.auto_scaling is on, but this gateway process shares the worker "
                "pool of 'serve --workers N', which is not scaled: it keeps workers.count = %d "
                "workers (run one gateway process to scale them)",
                settings.count,
            )
        _attach_shared(app, shared, settings)
        return
    held: list[LocalWorkerPool] = []

    async def start_workers(app: GatewayApp) -> None:
        from ..workers import start_default_workers

        pool, nodes, local = await start_default_workers(settings, metrics=app.perf.metrics)
        held.append(pool)
        route: Upstream = local
        if scaling is not None:
            from ..scaling._tracked import TrackedUpstream

            scaler = local_scaler(app, pool, local, scaling)
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
    app: GatewayApp, pool: LocalWorkerPool, local: LocalModelUpstream, settings: PredictiveSettings
) -> PredictiveScaler:
    """The scaler of the gateway's own workers: each worker a replica of ``local``'s model,
    as many requests at once as a worker's node takes."""
    from ..scaling._local import LocalProcessBackend
    from ..scaling._scaler import PredictiveScaler

    perf = app.perf
    backend = LocalProcessBackend(pool, local, perf.registry, clock=perf.clock)
    nodes = pool.nodes()
    return PredictiveScaler(
        backend,
        settings,
        concurrency=nodes[0].max_concurrency if nodes else 1,
        clock=perf.clock,
        metrics=perf.metrics,
    )


def _attach_shared(app: GatewayApp, path: str, settings: WorkerSettings) -> None:
    async def join_pool(app: GatewayApp) -> None:
        upstream = SharedPoolUpstream(path, timeout=settings.batch_timeout)
        nodes = await upstream.connect()
        _dispatcher(app).add_route(LOCAL, upstream)
        for node in nodes:
            app.perf.add_node(node)

    app.on_startup.append(join_pool)  # closed with the other upstreams by perf.close()
