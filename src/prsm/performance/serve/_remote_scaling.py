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

Under ``serve --workers N`` (N > 1) the serving parent runs the scaler (in its
:class:`~._shared_pool.PoolHost`, which it starts for this even without local workers; Ray
replicas are nodes of its registry, pushed to every gateway process), and each gateway
process routes the replicas through a tracked upstream whose hooks go to the parent's
tracker (:func:`remote_reporter`, a :class:`~._pool_client.LoadReporter`), so the scaler
sees every process's requests; each process's ``/admin/scaling`` shows the parent's scaler.
Both sections at once are refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..config import PRSMConfig, build
from ..errors import ConfigError
from ..routing._node import NodeSpec
from ..scaling._tracked import LoadHooks
from ..upstreams._dispatch import META_KEY
from ._local_workers import _dispatcher
from ._pod_links import attach_pod_receiver, forward_pod_reports
from ._pool_client import LoadReporter, SharedPoolUpstream

if TYPE_CHECKING:
    from ..clock import Clock
    from ..gateway._app import GatewayApp
    from ..monitoring._registry import MetricsRegistry
    from ..routing._registry import NodeRegistry
    from ..scaling._kubernetes import KubernetesScalingSettings
    from ..scaling._predictive import PredictiveSettings
    from ..scaling._ray import RayScalingSettings
    from ..scaling._scaler import PredictiveScaler
    from ._shared_pool import RemoteScaler

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
        return KUBERNETES
    return RAY if config.ray.enabled else None


def remote_scaler(config: PRSMConfig) -> RemoteScaler | None:
    """With ``orchestrator.auto_scaling`` and a ``kubernetes`` or ``ray`` section: what
    builds its scaler over a registry, clock and metrics (the replicas' load is tracked by
    the caller); checked now (a :class:`ConfigError` naming the field). ``None`` otherwise."""
    section = remote_section(config)
    if not config.orchestrator.auto_scaling or section is None:
        return None
    scaling = config.scaling
    if section == KUBERNETES:
        kube = config.kubernetes

        def deployment(
            registry: NodeRegistry, clock: Clock, metrics: MetricsRegistry
        ) -> PredictiveScaler:
            return kubernetes_scaler(kube, scaling, clock=clock, metrics=metrics)

        return deployment
    ray = config.ray
    template = ray_template(ray, config.gateway.upstream_timeout)
    check_actor_options(ray)

    def actors(registry: NodeRegistry, clock: Clock, metrics: MetricsRegistry) -> PredictiveScaler:
        return ray_scaler(ray, template, scaling, registry, clock=clock, metrics=metrics)

    return actors


def _route_replicas(app: GatewayApp, config: PRSMConfig, section: str, hooks: LoadHooks) -> None:
    """Route the section's replicas (the route ``section``) through a tracked HTTP upstream
    that feeds ``hooks``; a Deployment's configured node is moved onto that route."""
    from ..scaling._tracked import TrackedUpstream

    dispatcher = _dispatcher(app)
    if dispatcher.default is None:
        raise ConfigError(section, "the gateway has no HTTP upstream to reach its replicas")
    tracked = TrackedUpstream(dispatcher.default, hooks, clock=app.perf.clock)
    dispatcher.add_route(section, tracked)
    if section == KUBERNETES:
        _retag(app, config.kubernetes.node)


def attach_remote_scaler(app: GatewayApp, config: PRSMConfig, section: str) -> None:
    """Scale the replicas of ``section`` (``"kubernetes"`` or ``"ray"``) from this process when
    ``app`` starts (see the module docstring); a :class:`ConfigError` now if it is wrong."""
    make = remote_scaler(config)
    if make is None:
        return
    if section == KUBERNETES:
        _check_kubernetes_node(app, config.kubernetes)
        if config.kubernetes.leader_election.enabled:  # one of several: scale while leading
            from ._pod_standby import attach_candidate

            attach_candidate(app, config, make)
            return
    perf = app.perf

    async def start_scaling(app: GatewayApp) -> None:
        scaler = make(perf.registry, perf.clock, perf.metrics)
        _route_replicas(app, config, section, scaler.tracker)
        attach_pod_receiver(app, config, scaler.tracker)  # the other gateway pods' load
        perf.attach_scaler(scaler)  # started with the orchestrator, closed with it

    app.on_startup.append(start_scaling)


def remote_reporter(
    app: GatewayApp, config: PRSMConfig, section: str
) -> Callable[[GatewayApp, SharedPoolUpstream], None]:
    """In a gateway process of ``serve --workers N`` whose serving parent scales the replicas
    of ``section``: what routes them through a tracked upstream whose load goes to the parent
    (a :class:`LoadReporter` over the parent's connection), to call once connected; a
    :class:`ConfigError` now if the section is wrong."""
    if section == KUBERNETES:
        _check_kubernetes_node(app, config.kubernetes)

    def report(app: GatewayApp, link: SharedPoolUpstream) -> None:
        _route_replicas(app, config, section, LoadReporter(link))
        forward_pod_reports(app, config, link)  # the other gateway pods' load, to the parent

    return report


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


def ray_template(settings: RayScalingSettings, default_timeout: float) -> NodeSpec:
    """The node every Ray replica is registered as (its own id and url aside): the section's
    ``node``, each field checked as a configured node's (a :class:`ConfigError` naming
    ``ray.node.FIELD``); ``default_timeout`` unless it sets ``timeout``."""
    data = {"timeout": default_timeout, **settings.node, "id": settings.prefix}
    try:
        return build(NodeSpec, data, "ray.node")
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError("ray.node", str(exc)) from None


def check_actor_options(settings: RayScalingSettings) -> None:
    """A :class:`ConfigError` naming ``ray.actor_options`` unless Ray accepts them (checked
    without starting Ray)."""
    from ..scaling._ray import ReplicaServer, _ray

    try:
        _ray().remote(ReplicaServer).options(**settings.actor_options)
    except (TypeError, ValueError) as exc:
        raise ConfigError("ray.actor_options", str(exc)) from None


def ray_scaler(
    settings: RayScalingSettings,
    template: NodeSpec,
    scaling: PredictiveSettings,
    registry: NodeRegistry,
    *,
    clock: Clock,
    metrics: MetricsRegistry,
) -> PredictiveScaler:
    """The predictive scaler of Ray actors registered in ``registry`` as ``template``'s
    nodes on the ``ray`` route (their load tracked by the caller)."""
    from ..scaling._ray import RayBackend
    from ..scaling._scaler import PredictiveScaler

    backend = RayBackend(
        settings.command, registry, template,
        actor_options=settings.actor_options, host=settings.host, address=settings.address,
        init_options=settings.init_options(), ready_timeout=settings.ready_timeout,
        drain_timeout=settings.drain_timeout, clock=clock, prefix=settings.prefix, route=RAY,
    )  # fmt: skip
    return PredictiveScaler(backend, scaling, concurrency=settings.replica_concurrency,
                            clock=clock, metrics=metrics)  # fmt: skip
