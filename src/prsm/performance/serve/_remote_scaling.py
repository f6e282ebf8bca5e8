"""``prsm-perf serve`` scaling replicas beyond this machine ahead of demand, with
``orchestrator.auto_scaling``: a Kubernetes Deployment (the config's ``kubernetes`` section)
or Ray actors (the ``ray`` section). Local workers are then not scaled (they keep
``workers.count``).

Either way, the scaled replicas' nodes are routed through a
:class:`~prsm.performance.scaling.TrackedUpstream` over the gateway's HTTP upstream (the
route ``meta.upstream = "kubernetes"`` or ``"ray"``), so each of their calls and streams feeds
the scaler's tracker; a :class:`~prsm.performance.scaling.PredictiveScaler` (the ``scaling``
section, ``replica_concurrency`` requests a replica) drives the backend, and
``/admin/scaling``, the metrics and the monitoring history show it as they show the local
workers' scaler. It starts with the app and is closed with it.

- **Kubernetes**: the Deployment's pods sit behind one configured node (a Service's URL),
  which is retagged; a :class:`~prsm.performance.scaling.KubernetesBackend` patches the
  Deployment's ``scale`` subresource.
- **Ray**: a :class:`~prsm.performance.scaling.RayBackend` starts each replica as an actor
  running the section's ``command`` and registers it as a node made from the section's
  ``node``; the gateway's close drains and stops them (and the local Ray instance it started).

The tracker counts the requests of the process it runs in, so replicas are scaled from one
gateway process: ``serve --workers N`` (N > 1) with either section is refused, and so are
both sections at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..config import PRSMConfig, build
from ..errors import ConfigError
from ..routing._node import NodeSpec
from ..upstreams._dispatch import META_KEY
from ._local_workers import _dispatcher

if TYPE_CHECKING:
    from ..gateway._app import GatewayApp
    from ..scaling._controller import ScalingBackend
    from ..scaling._kubernetes import KubernetesScalingSettings
    from ..scaling._predictive import PredictiveSettings
    from ..scaling._ray import RayScalingSettings

#: the route (``meta.upstream``) of the node whose pods are scaled
KUBERNETES = "kubernetes"
#: the route of the Ray replicas' nodes
RAY = "ray"


def remote_section(config: PRSMConfig) -> str | None:
    """The section that scales remote replicas (``"kubernetes"``, ``"ray"`` or ``None``); a
    :class:`ConfigError` if both are set."""
    if config.kubernetes.enabled and config.ray.enabled:
        raise ConfigError("ray.command", "scale Ray actors or a Kubernetes Deployment, not both")
    if config.kubernetes.enabled:
        return "kubernetes"
    return "ray" if config.ray.enabled else None


def check_one_process(config: PRSMConfig, workers: int) -> None:
    """A :class:`ConfigError` if ``workers`` gateway processes would each scale the replicas."""
    section = remote_section(config)
    if workers > 1 and config.orchestrator.auto_scaling and section is not None:
        field = "kubernetes.deployment" if section == "kubernetes" else "ray.command"
        raise ConfigError(
            field,
            f"is scaled from one gateway process: serve it with --workers 1 (each of {workers} "
            "processes would scale it on its own share of the requests)",
        )


def _scale_on_startup(
    app: GatewayApp,
    route: str,
    make_backend: Callable[[], ScalingBackend],
    *,
    scaling: PredictiveSettings,
    concurrency: int,
    field: str,
) -> None:
    """When ``app`` starts: route ``route`` through a tracked HTTP upstream and attach a
    predictive scaler over the backend ``make_backend`` builds."""
    perf = app.perf

    async def start_scaling(app: GatewayApp) -> None:
        from ..scaling._scaler import PredictiveScaler
        from ..scaling._tracked import TrackedUpstream

        scaler = PredictiveScaler(
            make_backend(), scaling, concurrency=concurrency, clock=perf.clock,
            metrics=perf.metrics,
        )  # fmt: skip
        dispatcher = _dispatcher(app)
        if dispatcher.default is None:
            raise ConfigError(field, "the gateway has no HTTP upstream to reach its replicas")
        dispatcher.add_route(
            route, TrackedUpstream(dispatcher.default, scaler.tracker, clock=perf.clock)
        )
        perf.attach_scaler(scaler)  # started with the orchestrator, closed with it

    app.on_startup.append(start_scaling)


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

    def backend() -> ScalingBackend:
        from ..scaling._kubernetes import KubernetesBackend

        built = KubernetesBackend(
            settings.deployment, settings.namespace, client=settings.api_client(),
            timeout=settings.timeout,
        )  # fmt: skip
        spec = perf.registry.get(settings.node)  # its calls go through the tracked route now
        perf.registry.upsert(dataclasses.replace(spec, meta={**spec.meta, META_KEY: KUBERNETES}))
        return built

    _scale_on_startup(
        app, KUBERNETES, backend, scaling=scaling, concurrency=settings.replica_concurrency,
        field="kubernetes.node",
    )  # fmt: skip


def ray_template(settings: RayScalingSettings, default_timeout: float) -> NodeSpec:
    """The node every Ray replica is registered as (its own id and url aside): the section's
    ``node``, each field checked as a configured node's (a :class:`ConfigError` naming
    ``ray.node.FIELD``)."""
    data = {"timeout": default_timeout, **settings.node, "id": settings.prefix}
    try:
        return build(NodeSpec, data, "ray.node")
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError("ray.node", str(exc)) from None


def attach_ray_scaler(
    app: GatewayApp, settings: RayScalingSettings, scaling: PredictiveSettings, timeout: float
) -> None:
    """Scale Ray actors from when ``app`` starts (see the module docstring); a
    :class:`ConfigError` now if the section's ``node`` or ``actor_options`` is wrong
    (``timeout``: a replica node's request timeout unless ``node`` sets one)."""
    from ..scaling._ray import RayBackend, ReplicaServer, _ray

    template = ray_template(settings, timeout)
    try:  # Ray checks the options without starting
        _ray().remote(ReplicaServer).options(**settings.actor_options)
    except (TypeError, ValueError) as exc:
        raise ConfigError("ray.actor_options", str(exc)) from None
    perf = app.perf

    def backend() -> ScalingBackend:
        return RayBackend(
            settings.command, perf.registry, template,
            actor_options=settings.actor_options, host=settings.host, address=settings.address,
            init_options=settings.init_options(), ready_timeout=settings.ready_timeout,
            drain_timeout=settings.drain_timeout, clock=perf.clock, prefix=settings.prefix,
            route=RAY,
        )  # fmt: skip

    _scale_on_startup(
        app, RAY, backend, scaling=scaling, concurrency=settings.replica_concurrency,
        field="ray.command",
    )  # fmt: skip
