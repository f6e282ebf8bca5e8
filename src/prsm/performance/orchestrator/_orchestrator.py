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

The room's modules depend one way: this class (its parts built and wired by its base,
``_wiring``) and its drivers (``_unary``, ``_stream``) → ``_attempt`` (the bookkeeping both
drivers share) → ``_retry``, ``_hedge`` (the hedging policy), ``_metrics``, ``_settings``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING

from .._awaiting import stop_task
from ..errors import ConfigError, PRSMError
from ..monitoring._record import record_failure, record_result, recorded_stream
from ..monitoring._stages import QUEUE
from ..routing._node import NodeSpec
from ..types import AIRequest, ExecutionResult, RequestKind
from ..upstreams._base import Upstream, can_stream
from ._attempt import first_node
from ._stream import run_stream
from ._unary import attempt_first, attempt_once, retry_unary
from ._wiring import Wiring

if TYPE_CHECKING:
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


class PerformanceOrchestrator(Wiring):
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
        m.ok.value += 1.0  # (the plain counter's inc(), inline: one call less a request)
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
