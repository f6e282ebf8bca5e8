"""The orchestrator: the source post's ``PerformanceOrchestrator`` and the one-call pipeline.

::

    perf = PerformanceOrchestrator(auto_scaling=True, load_balancing="intelligent",
                                   caching_strategy="multi_tier", monitoring_interval=1.0)
    endpoint = await perf.select_optimal_endpoint(request)
    result = await perf.execute_with_monitoring(endpoint, request)
    await perf.update_performance_model(request, result)

or ``await perf.handle(request)``: cache → route → execute with the node's breaker (a unary
request still unanswered after its hedge delay hedged on a second node) → on a
retryable failure what the retry policy decides (the next capable node, or a back-off), within
the request's deadline → learn → store.

The room's modules depend one way: this class and its drivers (``_unary``, ``_stream``) →
``_attempt`` (the bookkeeping both drivers share) → ``_retry``, ``_hedge`` (the hedging
policy), ``_metrics``, ``_settings``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import AsyncIterator, Iterable
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._awaiting import stop_task
from ..caching._base import ResponseCache
from ..caching._settings import CacheSettings
from ..clock import Clock, SystemClock
from ..config import PRSMConfig
from ..errors import ConfigError, PRSMError
from ..monitoring._monitor import PerformanceMonitor
from ..monitoring._record import record_failure, record_result, recorded_stream
from ..monitoring._recorder import QUEUE, RequestRecorder
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
from ..types import AIRequest, ExecutionResult, RequestKind
from ..upstreams._base import Upstream, can_stream
from ._attempt import Pipeline, first_node
from ._metrics import OrchestratorMetrics, node_snapshots
from ._settings import OrchestratorSettings, check_caching_strategy
from ._stream import run_stream
from ._unary import attempt_first, attempt_once, retry_unary

if TYPE_CHECKING:
    from ..scaling._scaler import PredictiveScaler
    from ..scaling._types import Scaler

log = logging.getLogger(__name__)
#: each request kind's metric label (its value)
_KIND_LABELS = {kind: kind.value for kind in RequestKind}

AUTO_SCALING_WARNING = (
    "auto_scaling=True but no scaler: nothing scales replicas here; pass "
    "scaler=PredictiveScaler(backend) (a LocalProcessBackend, RayBackend or KubernetesBackend), "
    "or run `prsm-perf serve`, which scales its local workers (with --workers N, the serving "
    "parent scales the pool its gateway processes share)"
)


class PerformanceOrchestrator:
    """Routes, protects, executes and learns from AI requests (the source post's class).

    ``load_balancing`` is one of :data:`~prsm.performance.routing.ROUTING_STRATEGIES`;
    ``caching_strategy`` one of ``none``, ``memory``, ``multi_tier``, ``semantic``,
    ``multi_tier+semantic``; an unknown value raises :class:`ValueError`
    (:class:`~prsm.performance.errors.ConfigError`) naming the option and the allowed values.
    Options left as ``None`` come from ``settings`` / ``balancer_settings`` (whose defaults
    are the post's: intelligent routing, no auto-scaling, a 1 s monitoring interval).

    ``caching_strategy`` builds the response cache (exact tiers and/or the semantic cache,
    configured by ``cache_settings`` / ``semantic_settings``) unless ``cache=`` is given.
    ``scaler`` (a :class:`~prsm.performance.scaling.PredictiveScaler` over a replica backend)
    runs from :meth:`start` to :meth:`close`, and :meth:`snapshot` shows it; the gateway
    attaches one over its local workers when ``auto_scaling`` is on. ``auto_scaling=True``
    with no scaler at :meth:`start` logs one warning that nothing scales.

    ``upstream`` executes requests (e.g. :class:`~prsm.performance.upstreams.CallableUpstream`);
    without one, :meth:`handle` raises :class:`ConfigError`. ``metrics`` is the injected
    registry every component records into (a private one if omitted, never the global one).
    """

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
    ) -> PerformanceOrchestrator:
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

    # -- the post's three steps ------------------------------------------------------------

    async def select_optimal_endpoint(self, request: AIRequest) -> NodeSpec:
        """The node the balancer picks for ``request`` now (raises
        :class:`NoCapableNodesError` or :class:`~prsm.performance.errors.UnknownModelError`)."""
        return self._p.pick(request, self.clock.monotonic(), None)

    async def execute_with_monitoring(self, node: NodeSpec, request: AIRequest) -> ExecutionResult:
        """Run ``request`` once on ``node`` through its breaker, counting it in flight and
        recording breaker outcome and metrics. Never raises for an upstream failure: the
        result has ``ok=False`` and ``error`` (a refused breaker gives a
        :class:`CircuitBreakerOpenError`). What the router learns is left to
        :meth:`update_performance_model`."""
        upstream = self._need_upstream()
        now = self.clock.monotonic()
        budget = request.timeout or self.settings.default_timeout
        result = await attempt_once(
            self._p, upstream, node, request, now, deadline=now + budget, learn=False
        )
        if result.ok:
            result.timings.setdefault("upstream", result.latency)
            record_result(self.recorder, request, result, cached=False)
        elif result.error is not None:
            record_failure(self.recorder, request, result.error, result.latency)
        return result

    async def update_performance_model(self, request: AIRequest, result: ExecutionResult) -> None:
        """Teach the performance model (per-node EWMA latency and success rate, which feed the
        scores) the outcome ``result``. Cache hits, refused breakers and errors that do not
        count against the node (a client's 4xx) teach nothing about the node."""
        if result.node_id is not None and result.cache is None:
            self._p.learn(result.node_id, result.latency, result.ok, result.error)

    def _need_upstream(self) -> Upstream:
        if self.upstream is None:
            raise ConfigError(
                "upstream",
                "no upstream configured: pass PerformanceOrchestrator(upstream=...), e.g. a "
                "CallableUpstream, to execute requests",
            )
        return self.upstream

    # -- the pipeline ----------------------------------------------------------------------

    async def handle(self, request: AIRequest) -> ExecutionResult:
        """Answer ``request``: from cache if it may, else from the best capable node,
        retrying retryable failures as the retry policy decides, within the deadline.

        Raises :class:`NoCapableNodesError` / ``UnknownModelError`` when nothing can serve
        it, :class:`DeadlineExceededError` when its deadline passes first, and the
        :class:`UpstreamError` itself when it is not retryable (a client's 4xx) or when the
        policy stops (attempts spent, no node left, a back-off or ``Retry-After`` past the
        deadline). ``result.latency`` is the caller's total wait; ``result.timings["upstream"]``
        the answering node's time. Either way it is recorded (outcome, latency, stages,
        tokens) in :attr:`recorder`.
        """
        p = self._p
        monotonic = p.monotonic
        start = monotonic()
        cache = self.cache
        consulted = cache is not None and request.cache_mode == "default"
        try:
            upstream = self.upstream
            if upstream is None:
                upstream = self._need_upstream()
            m = self._m
            cache_s = -1.0
            if consulted:
                assert cache is not None
                hit = await cache.lookup(request)
                cache_s = monotonic() - start
                if hit is not None:
                    m.cache_hit.inc()
                    result = ExecutionResult(
                        request.id,
                        None,
                        True,
                        monotonic() - start,
                        response=hit.response,
                        attempts=0,
                        cache=hit.tier,
                        similarity=hit.similarity,
                        timings={"cache": cache_s},
                    )
                    record_result(self.recorder, request, result, cached=True)
                    return result
            deadline = start + (request.timeout or self.settings.default_timeout)
            picking = monotonic() if consulted else start  # (one clock reading less)
            node = first_node(p, request, picking)
            route_s = monotonic() - picking
            hedger = p.hedger
            if hedger is None:
                hedge = False
            else:  # every unary request adds to the hedge budget (hedger.deposit, inline)
                tokens = p.hedge_tokens + hedger.ratio
                burst = hedger.burst
                p.hedge_tokens = tokens = tokens if tokens < burst else burst
                hedge = tokens >= 1.0  # else no hedge could go: no hedge timer either
            result, tried = await attempt_first(
                p, upstream, node, request, start, deadline=deadline, hedge=hedge
            )
            if not result.ok:
                result = await retry_unary(p, upstream, request, result, deadline, tried=tried)
            response = result.response
            if cache is not None and request.cache_mode != "no-store" and response is not None:
                await cache.store(request, response)
        except PRSMError as exc:
            record_failure(self.recorder, request, exc, monotonic() - start)
            raise
        total = monotonic() - start
        upstream_s = result.latency
        timings = result.timings
        timings["upstream"] = upstream_s
        timings["route"] = route_s
        if cache_s >= 0.0:
            timings["cache"] = cache_s
        result.latency = total
        m.ok.inc()
        m.latency.observe(total)
        if response is None:
            tokens_in = tokens_out = 0
        else:
            tokens_in = response.input_tokens
            tokens_out = response.output_tokens or (0 if tokens_in else response.tokens)
            queue_s = response.queue_seconds
            if queue_s >= 0.0:  # the node's own queue (a local batcher) said how long
                timings["queue"] = queue_s
                self.recorder.stage(QUEUE, queue_s)
        # record_result's call, with the figures at hand (the kind's label from a table: an
        # enum's ``value`` is a property, three times the cost of a dict look-up)
        self.recorder.request(
            _KIND_LABELS[request.kind], request.model, request.tenant, result.node_id, "ok", "",
            total, upstream_s, tokens_in, tokens_out, "miss" if consulted else None, cache_s,
            route_s,
        )  # fmt: skip
        return result

    def handle_stream(self, request: AIRequest) -> AsyncIterator[bytes]:
        """Stream ``request``'s answer (raw chunks as the node sends them).

        Raises :class:`ConfigError` at once when the upstream cannot stream. Routing,
        breakers and the retry policy as in :meth:`handle`, except that a failure after the
        first chunk has been yielded cannot move to another node: it is raised. The deadline
        bounds the wait for the first chunk; after it the stream limits apply
        (``stream_idle_timeout`` between chunks, optional ``stream_total_timeout``). The
        node's latency is its time to the first chunk.
        """
        upstream = self.upstream
        if upstream is None:
            upstream = self._need_upstream()
        if not can_stream(upstream):
            raise ConfigError(
                "upstream", f"{type(upstream).__name__} cannot stream (it has no stream())"
            )
        p = self._p
        if self.cache is None:  # recorded by the driver itself (one stream layer less)
            return run_stream(p, upstream, request, self.recorder)
        from ..caching._response_cache import CachedStream

        # (a partial, not a lambda: a lambda would make this method's names closure cells,
        # made on every stream, cached or not)
        cached = CachedStream(self.cache, request, partial(run_stream, p, upstream, request))
        return recorded_stream(self.recorder, request, cached)

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

    async def _monitor_loop(self) -> None:
        while True:
            self.refresh_gauges()
            self.poller.tick()
            await self.clock.sleep(self.settings.monitoring_interval)

    async def start(self) -> None:
        """Start the monitoring loops (every ``monitoring_interval`` seconds) and the scaler."""
        if self._monitor is None or self._monitor.done():
            self._monitor = asyncio.get_running_loop().create_task(self._monitor_loop())
        if self.monitor.settings.enabled:
            await self.monitor.start()
        if self.scaler is not None:
            self.scaler.start()
        elif self.settings.auto_scaling:
            log.warning(AUTO_SCALING_WARNING)

    def attach_scaler(self, scaler: Scaler) -> None:
        """Scale with ``scaler`` from now on (started if this orchestrator runs, closed with
        it); replaces none that is already attached."""
        if self.scaler is not None:
            raise ConfigError("scaler", "a scaler is already attached")
        self.scaler = scaler
        if self._monitor is not None:
            scaler.start()

    async def close(self) -> None:
        """Stop the loops (the monitor flushes its history); close the upstream and the cache
        if they have ``aclose()``; the scaler first (its loop stops, its backend is closed)."""
        if self.scaler is not None:
            await self.scaler.close()
        await self.monitor.close()
        task, self._monitor = self._monitor, None
        await stop_task(task)
        await self.poller.aclose()
        for part in (self.upstream, self.cache):
            aclose = getattr(part, "aclose", None)
            if aclose is not None:
                await aclose()

    async def __aenter__(self) -> PerformanceOrchestrator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


__all__ = ["PerformanceOrchestrator"]
