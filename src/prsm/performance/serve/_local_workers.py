"""Local model workers behind the gateway: started with the app, stopped with it.

With ``workers.enabled`` (the default) the gateway starts ``workers.count`` worker processes
holding the bundled embedding model when the app starts, adds one node per worker (tagged
``meta.upstream = "local"``) and routes those nodes to the batching
:class:`~prsm.performance.workers.LocalModelUpstream`; everything else still goes over HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..upstreams._dispatch import DispatchUpstream
from ..workers._settings import WorkerSettings

if TYPE_CHECKING:
    from ..gateway._app import GatewayApp
    from ..workers._pool import LocalWorkerPool


def attach_local_workers(app: GatewayApp, settings: WorkerSettings) -> None:
    """Add start/stop hooks to ``app`` that run the local worker pool (no-op when disabled)."""
    if not settings.enabled or settings.count <= 0:
        return
    held: list[LocalWorkerPool] = []

    async def start_workers(app: GatewayApp) -> None:
        from ..workers import start_default_workers

        pool, nodes, local = await start_default_workers(settings, metrics=app.perf.metrics)
        held.append(pool)
        upstream = app.perf.upstream
        if not isinstance(upstream, DispatchUpstream):
            raise TypeError(f"local workers need a DispatchUpstream, got {type(upstream).__name__}")
        upstream.add_route("local", local)
        app.perf.poller.add_source(local, "worker")  # cpu, memory, queue of each worker
        for node in nodes:
            app.perf.add_node(node)

    async def stop_workers(app: GatewayApp) -> None:
        # the orchestrator's close() already closed the upstreams, the local one included
        while held:
            await held.pop().close()

    app.on_startup.append(start_workers)
    app.on_shutdown.append(stop_workers)
