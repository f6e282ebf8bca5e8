"""``prsm-perf serve`` scaling a Kubernetes Deployment ahead of demand (the config's
``kubernetes`` section, with ``orchestrator.auto_scaling``).

The Deployment's pods sit behind one configured node (a Service's URL). When the app starts,
that node is routed through a :class:`~prsm.performance.scaling.TrackedUpstream` over the
gateway's HTTP upstream (tagged ``meta.upstream = "kubernetes"``), so each of its calls and
streams feeds the scaler's tracker; a :class:`~prsm.performance.scaling.PredictiveScaler`
(the ``scaling`` section, ``replica_concurrency`` requests a pod) over a
:class:`~prsm.performance.scaling.KubernetesBackend` patches the Deployment's ``scale``
subresource, and ``/admin/scaling``, the metrics and the monitoring history show it as they
show the local workers' scaler. Local workers are then not scaled (they keep
``workers.count``).

The tracker counts the requests of the process it runs in, so the Deployment is scaled from
one gateway process: ``serve --workers N`` (N > 1) with this section is refused.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..upstreams._dispatch import META_KEY
from ._local_workers import _dispatcher

if TYPE_CHECKING:
    from ..gateway._app import GatewayApp
    from ..scaling._kubernetes import KubernetesScalingSettings
    from ..scaling._predictive import PredictiveSettings

#: the route (``meta.upstream``) of the node whose pods are scaled
KUBERNETES = "kubernetes"


def attach_kubernetes_scaler(
    app: GatewayApp, settings: KubernetesScalingSettings, scaling: PredictiveSettings
) -> None:
    """Scale ``settings.deployment`` from when ``app`` starts (see the module docstring);
    a :class:`ConfigError` now if its node is not configured or already has a route."""
    perf = app.perf
    if settings.node not in perf.registry:
        known = sorted(n.id for n in perf.registry.nodes())
        problem = f"no configured node {settings.node!r}; nodes: {known}"
        raise ConfigError("kubernetes.node", problem)
    tag = perf.registry.get(settings.node).meta.get(META_KEY)
    if tag is not None:
        raise ConfigError("kubernetes.node", f"node {settings.node!r} is served by {tag!r}")

    async def start_scaling(app: GatewayApp) -> None:
        from ..scaling._kubernetes import KubernetesBackend
        from ..scaling._scaler import PredictiveScaler
        from ..scaling._tracked import TrackedUpstream

        backend = KubernetesBackend(
            settings.deployment,
            settings.namespace,
            client=settings.api_client(),
            timeout=settings.timeout,
        )
        scaler = PredictiveScaler(
            backend,
            scaling,
            concurrency=settings.replica_concurrency,
            clock=perf.clock,
            metrics=perf.metrics,
        )
        dispatcher = _dispatcher(app)
        if dispatcher.default is None:
            raise ConfigError("kubernetes.node", "the gateway has no HTTP upstream to reach it")
        tracked = TrackedUpstream(dispatcher.default, scaler.tracker, clock=perf.clock)
        dispatcher.add_route(KUBERNETES, tracked)
        spec = perf.registry.get(settings.node)
        perf.registry.upsert(dataclasses.replace(spec, meta={**spec.meta, META_KEY: KUBERNETES}))
        perf.attach_scaler(scaler)  # started with the orchestrator, closed with it

    app.on_startup.append(start_scaling)
