"""The orchestrator's parts and how they are wired: the base of :class:`PerformanceOrchestrator`.

:class:`Wiring` builds every part from the options or a loaded config (settings, metrics and
recorder, monitor, node registry, tracker, balancer, breakers, the drivers' shared
:class:`~._attempt.Pipeline`, the response cache, the load poller), and holds the node
operations and the inspection (snapshot, gauges) that read them.
:class:`~._orchestrator.PerformanceOrchestrator` adds the pipeline and the lifecycle.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Self

from ..caching._base import ResponseCache
from ..caching._settings import CacheSettings
from ..clock import Clock, SystemClock
from ..config import PRSMConfig
from ..errors import ConfigError
from ..monitoring._monitor import PerformanceMonitor
from ..monitoring._recorder import RequestRecorder
from ..monitoring._registry import MetricsRegistry
from ..monitoring._settings import MonitoringSettings
from ..nodeload._poller import NodePoller
from ..resilience._breaker import BreakerSet, CircuitBreaker, CircuitState
from ..resilience._settings import BreakerSettings
from ..routing._balancer import AILoadBalancer
from ..routing._node import NodeMetrics, NodeSpec, node_from_mapping
from ..routing._registry import NodeRegistry
from ..routing._settings import BalancerSettings, check_strategy
from ..routing._tracker import PerformanceTracker
from ..upstreams._base import Upstream
from ._attempt import Pipeline
from ._metrics import OrchestratorMetrics, node_snapshots
from ._settings import OrchestratorSettings, check_caching_strategy

if TYPE_CHECKING:
    import asyncio

    from ..scaling._scaler import PredictiveScaler
    from ..scaling._types import Scaler


class Wiring:
    """The parts of a :class:`~._orchestrator.PerformanceOrchestrator` (whose text says what
    each option does), wired together; the node operations; the inspection."""

    def __init__(
        self,
        auto_scaling: bool | None = None,
        load_balancing: str | None = None,
        caching_strategy: str | None = None,
        monitoring_interval: float | None = None,
        *,
        nodes: Iterable[NodeSpec] = (),
        upstream: Upstream | None = None,
        cache: ResponseCache | None = None,
        settings: OrchestratorSettings | None = None,
        balancer_settings: BalancerSettings | None = None,
        breaker_settings: BreakerSettings | None = None,
        cache_settings: CacheSettings | None = None,
        semantic_settings: Any = None,
        metrics: MetricsRegistry | None = None,
        monitoring: MonitoringSettings | None = None,
        scaler: PredictiveScaler | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        s = settings or OrchestratorSettings()
        changes: dict[str, Any] = {}
        if auto_scaling is not None:
            if not isinstance(auto_scaling, bool):
                raise ConfigError("auto_scaling", f"must be True or False, got {auto_scaling!r}")
            changes["auto_scaling"] = auto_scaling
        if caching_strategy is not None:
            changes["caching_strategy"] = check_caching_strategy(caching_strategy)
        if monitoring_interval is not None:
            changes["monitoring_interval"] = monitoring_interval
        if changes:
            s = dataclasses.replace(s, **changes)
        self.settings = s
        #: replicas scaled ahead of demand (None: none here); see :meth:`attach_scaler`
        self.scaler: Scaler | None = scaler
        bs = balancer_settings or BalancerSettings()
        if load_balancing is not None:
            check_strategy(load_balancing, "load_balancing")
            bs = dataclasses.replace(bs, strategy=load_balancing)
        self.balancer_settings = bs
        self.breaker_settings = breaker_settings or BreakerSettings()
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.metrics = metrics if metrics is not None else MetricsRegistry()
        self._m = OrchestratorMetrics(self.metrics)
        ms = monitoring or MonitoringSettings()
        self.recorder = RequestRecorder(
            self.metrics,
            latency_objective=ms.latency_objective,
            label_limit=ms.label_limit,
            provider=ms.provider,
        )
        #: the monitoring loop (collect_metrics every monitoring_interval); the gateway
        #: replaces it with one that keeps history and runs alert rules
        self.monitor = PerformanceMonitor(
            self.recorder, self, settings=ms, interval=s.monitoring_interval, clock=self.clock
        )
        self.registry = NodeRegistry()
        self.tracker = PerformanceTracker(bs)
        self.balancer = AILoadBalancer(
            self.registry, self.tracker, bs, rng=self.rng, clock=self.clock
        )
        self.breakers = BreakerSet(
            self.breaker_settings, clock=self.clock, on_block=self.balancer.set_blocked
        )
        self.breakers.add_listener(self._on_breaker_change)
        # a node the router stopped picking after failures (before its breaker opened) is
        # probed after the breakers' open interval, as if its breaker had opened, and after a
        # failed probe every probe_interval, as its breaker would
        self.balancer.probe_after = self.breaker_settings.reset_timeout
        self.balancer.reprobe_after = self.breaker_settings.probe_interval
        self.registry.add_listener(self._on_registry_change)
        self._p = Pipeline(
            settings=s,
            clock=self.clock,
            registry=self.registry,
            tracker=self.tracker,
            balancer=self.balancer,
            breakers=self.breakers,
            metrics=self._m,
            rng=self.rng,
        )
        self.upstream = upstream
        self.cache_settings = cache_settings or CacheSettings()
        self._semantic_settings = semantic_settings
        self.cache: ResponseCache | None = cache if cache is not None else self._build_cache()
        self._monitor: asyncio.Task[None] | None = None
        self.poller = NodePoller(  # nodes' load readings, polled from the monitoring loop
            self.registry, bs, interval=s.monitoring_interval, metrics=self.metrics,
            clock=self.clock, rng=self.rng,
        )  # fmt: skip
        for spec in nodes:
            self.registry.add(spec)

    @classmethod
    def from_config(
        cls,
        config: PRSMConfig,
        *,
        upstream: Upstream | None = None,
        cache: ResponseCache | None = None,
        metrics: MetricsRegistry | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> Self:
        """An orchestrator from a loaded config: its ``orchestrator``, ``routing`` and
        ``breaker`` sections and its ``nodes``."""
        return cls(
            nodes=[node_from_mapping(n) for n in config.nodes],
            upstream=upstream,
            cache=cache,
            settings=config.orchestrator,
            balancer_settings=config.routing,
            breaker_settings=config.breaker,
            cache_settings=config.cache,
            semantic_settings=getattr(config, "semantic", None),
            metrics=metrics,
            monitoring=config.monitoring,
            clock=clock,
            rng=rng,
        )

    def _build_cache(self) -> ResponseCache | None:
        """The response cache for ``settings.caching_strategy`` when none was passed in
        (``None`` for ``none``): memory, multi-tier and semantic tiers from the caching
        component's factory."""
        from ..caching._factory import build_response_cache

        return build_response_cache(
            self.settings.caching_strategy,
            self.cache_settings,
            metrics=self.metrics,
            clock=self.clock,
            semantic_settings=self._semantic_settings,
        )

    # -- nodes -----------------------------------------------------------------------------

    def add_node(self, spec: NodeSpec) -> None:
        """Register a new node; it can be picked at once."""
        self.registry.add(spec)

    def update_node(self, spec: NodeSpec) -> None:
        """Replace a node's spec (same id); its load, breaker and learned figures stay."""
        self.registry.update(spec)

    def drain_node(self, node_id: str) -> None:
        """Send the node no new requests; those it holds finish."""
        self.registry.drain(node_id)

    def activate_node(self, node_id: str) -> None:
        """Undo :meth:`drain_node`."""
        self.registry.activate(node_id)

    def remove_node(self, node_id: str) -> NodeSpec:
        """Unregister the node, its breaker, learned figures and metric series."""
        return self.registry.remove(node_id)

    def update_node_metrics(self, node_id: str, metrics: NodeMetrics) -> None:
        """Store the node's reported cpu, memory and queue depth (they feed its load)."""
        self.registry.update_metrics(node_id, metrics)

    def models(self) -> list[str]:
        """Every model some registered node serves, sorted."""
        return self.registry.models()

    def _on_registry_change(self, node_id: str, change: str) -> None:
        if change == "removed":
            self.breakers.remove(node_id)
            self._m.forget(node_id)

    def _on_breaker_change(
        self, breaker: CircuitBreaker, old: CircuitState, new: CircuitState
    ) -> None:
        self._m.transitions.labels(breaker.name, new.value).inc()
        if old is CircuitState.HALF_OPEN and new is CircuitState.CLOSED:
            self.tracker.restore(breaker.name)  # the probe succeeded: its score comes back

    # -- inspection ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Nodes with their metrics, scores, exclusions, breakers and learned figures, plus
        the options (for admin APIs and dashboards)."""
        s = self.settings
        nodes = node_snapshots(
            self.registry,
            self.tracker,
            self.balancer,
            self.breakers,
            latency_scale=self.balancer_settings.latency_scale,
            now=self.clock.monotonic(),
        )
        return {
            "strategy": self.balancer.strategy,
            "caching_strategy": s.caching_strategy,
            "cache": type(self.cache).__name__ if self.cache is not None else None,
            "auto_scaling": s.auto_scaling,
            "scaling": self.scaler.snapshot(last=1) if self.scaler is not None else None,
            "monitoring_interval": s.monitoring_interval,
            "nodes": nodes,
            "breakers": {n: st.value for n, st in self.breakers.states().items()},
        }

    def refresh_gauges(self) -> None:
        """Set the per-node gauges (in flight, score, breaker state) from the live state."""
        self._m.refresh(self.registry, self.balancer, self.breakers)
