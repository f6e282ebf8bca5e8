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

Under ``serve --workers N`` (N > 1) the serving parent scales the Deployment (in its
:class:`~._shared_pool.PoolHost`, which it starts for this even without local workers),
and each gateway process routes the node through a tracked upstream whose hooks go to the
parent's tracker (:func:`kubernetes_reporter`, a :class:`~._pool_client.LoadReporter`), so
the scaler sees every process's requests; each process's ``/admin/scaling`` shows the
parent's scaler. Ray actors' nodes live in the process that starts them, so ``serve
--workers N`` with the ``ray`` section is refused, and so are both sections at once.
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
from ._pool_client import LoadReporter, SharedPoolUpstream

if TYPE_CHECKING:
    from ..clock import Clock
    from ..gateway._app import GatewayApp
    from ..monitoring._registry import MetricsRegistry
    from ..scaling._kubernetes import KubernetesScalingSettings
    from ..scaling._predictive import PredictiveSettings
    from ..scaling._ray import RayScalingSettings
    from ..scaling._scaler import PredictiveScaler

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
    """A :class:`ConfigError` if ``workers`` gateway processes would each scale Ray actors
    (the replicas' nodes live in the process that starts them)."""
    if workers > 1 and config.orchestrator.auto_scaling and remote_section(config) == "ray":
        raise ConfigError(
            "ray.command",
            f"is scaled from one gateway process: serve it with --workers 1 (each of {workers} "
            "processes would scale it on its own share of the requests)",
        )


def _scale_on_startup(
    app: GatewayApp, route: str, make_scaler: Callable[[], PredictiveScaler], *, field: str
) -> None:
    """When ``app`` starts: attach the scaler ``make_scaler`` builds, and route ``route``
    through a tracked HTTP upstream that feeds its tracker."""
    perf = app.perf

    async def start_scaling(app: GatewayApp) -> None:
        from ..scaling._tracked import TrackedUpstream

        scaler = make_scaler()
        dispatcher = _dispatcher(app)
        if dispatcher.default is None:
            raise ConfigError(field, "the gateway has no HTTP upstream to reach its replicas")
        tracked = TrackedUpstream(dispatcher.default, scaler.tracker, clock=perf.clock)
        dispatcher.add_route(route, tracked)
        perf.attach_scaler(scaler)  # started with the orchestrator, closed with it

    app.on_startup.append(start_scaling)


def _check_kubernetes_node(app: GatewayApp, settings: KubernetesScalingSettings) -> None:
    perf = app.perf
    if settings.node not in perf.registry:
        known = sorted(n.id for n in perf.registry.nodes())
        problem = f"no configured node {settings.node!r}; nodes: {known}"
        raise ConfigError("kubernetes.node", problem)
    tag = perf.registry.get(settings.node).meta.get(META_KEY)
    if tag is not None:
        raise ConfigError("kubernetes.node", f"node {settings.node!r} is served by {tag!r}")


def _retag(app: GatewayApp, node: str) -> None:
    """Route ``node``'s calls through the tracked ``kubernetes`` route from now on."""
    perf = app.perf
    spec = perf.registry.get(node)
    perf.registry.upsert(dataclasses.replace(spec, meta={**spec.meta, META_KEY: KUBERNETES}))


def kubernetes_scaler(
    settings: KubernetesScalingSettings,
    scaling: PredictiveSettings,
    *,
    clock: Clock,
    metrics: MetricsRegistry,
) -> PredictiveScaler:
    """The predictive scaler of ``settings.deployment`` (its load tracked by the caller)."""
    from ..scaling._kubernetes import KubernetesBackend
    from ..scaling._scaler import PredictiveScaler

    backend = KubernetesBackend(
        settings.deployment, settings.namespace, client=settings.api_client(),
        timeout=settings.timeout,
    )  # fmt: skip
    return PredictiveScaler(backend, scaling, concurrency=settings.replica_concurrency,
                            clock=clock, metrics=metrics)  # fmt: skip


def attach_kubernetes_scaler(
    app: GatewayApp, settings: KubernetesScalingSettings, scaling: PredictiveSettings
) -> None:
    """Scale ``settings.deployment`` from when ``app`` starts (see the module docstring);
    a :class:`ConfigError` now if its node is not configured or already has a route."""
    _check_kubernetes_node(app, settings)
    perf = app.perf

    def scaler() -> PredictiveScaler:
        built = kubernetes_scaler(settings, scaling, clock=perf.clock, metrics=perf.metrics)
        _retag(app, settings.node)
        return built

    _scale_on_startup(app, KUBERNETES, scaler, field="kubernetes.node")


def kubernetes_reporter(
    app: GatewayApp, settings: KubernetesScalingSettings
) -> Callable[[GatewayApp, SharedPoolUpstream], None]:
    """In a gateway process of ``serve --workers N`` whose serving parent scales
    ``settings.deployment``: what routes its node through a tracked upstream whose load goes
    to the parent (a :class:`LoadReporter` over the parent's connection), to call once
    connected; a :class:`ConfigError` now if the node is not configured or has a route."""
    _check_kubernetes_node(app, settings)

    def report(app: GatewayApp, link: SharedPoolUpstream) -> None:
        from ..scaling._tracked import TrackedUpstream

        dispatcher = _dispatcher(app)
        if dispatcher.default is None:
            raise ConfigError("kubernetes.node", "the gateway has no HTTP upstream to reach it")
        tracked = TrackedUpstream(dispatcher.default, LoadReporter(link), clock=app.perf.clock)
        dispatcher.add_route(KUBERNETES, tracked)
        _retag(app, settings.node)

    return report


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

    def scaler() -> PredictiveScaler:
        from ..scaling._scaler import PredictiveScaler

        backend = RayBackend(
            settings.command, perf.registry, template,
            actor_options=settings.actor_options, host=settings.host, address=settings.address,
            init_options=settings.init_options(), ready_timeout=settings.ready_timeout,
            drain_timeout=settings.drain_timeout, clock=perf.clock, prefix=settings.prefix,
            route=RAY,
        )  # fmt: skip
        return PredictiveScaler(backend, scaling, concurrency=settings.replica_concurrency,
                                clock=perf.clock, metrics=perf.metrics)  # fmt: skip

    _scale_on_startup(app, RAY, scaler, field="ray.command")
