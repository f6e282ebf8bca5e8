"""The orchestrator's metrics and snapshot.

The per-request series are plain Python counters and histograms
(:class:`~prsm.performance.monitoring.PlainFamily`, kept in the injected registry), turned
into Prometheus families only when the registry is scraped. Gauges refreshed by the
monitoring loop stay prometheus_client gauges.

Families (all prefixed ``prsm_``):

* ``orchestrator_requests_total{outcome}`` — ``ok``, ``error``, ``cache_hit``;
* ``orchestrator_request_latency_seconds`` — what ``handle()`` callers waited;
* ``orchestrator_retries_total`` — attempts on a next node after a failure;
* ``node_picks_total{node}`` — the balancer chose the node;
* ``node_latency_seconds{node}`` — each attempt's time on the node;
* ``node_failures_total{node}`` — attempts that failed in a way that counts against the node;
* ``breaker_transitions_total{node,state}`` — a node's breaker entered ``state``;
* gauges refreshed by the monitoring loop: ``node_in_flight{node}``,
  ``node_score{node}``, ``breaker_state{node}`` (0 closed, 1 half-open, 2 open).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..monitoring._registry import MetricsRegistry, plain_family

if TYPE_CHECKING:
    from ._orchestrator import PerformanceOrchestrator

BREAKER_STATE_VALUE = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


class NodeChildren:
    """One node's labelled children."""

    __slots__ = ("failures", "latency", "picks")

    def __init__(self, picks: Any, latency: Any, failures: Any) -> None:
        self.picks = picks
        self.latency = latency
        self.failures = failures


class OrchestratorMetrics:
    """Every family the orchestrator records into, created once per registry."""

    def __init__(self, registry: MetricsRegistry) -> None:
        self.registry = registry
        requests = plain_family(
            registry, "counter", "orchestrator_requests", "Requests handled, by outcome.",
            ["outcome"],
        )  # fmt: skip
        self.ok = requests.labels("ok")
        self.error = requests.labels("error")
        self.cache_hit = requests.labels("cache_hit")
        self.latency = plain_family(
            registry, "histogram", "orchestrator_request_latency_seconds",
            "Time a handle() caller waited.",
        ).labels()  # fmt: skip
        self.retries = plain_family(
            registry, "counter", "orchestrator_retries",
            "Attempts on a next node after a retryable failure.",
        ).labels()  # fmt: skip
        self.picks = plain_family(
            registry, "counter", "node_picks", "Times the balancer chose a node.", ["node"]
        )
        self.node_latency = plain_family(
            registry, "histogram", "node_latency_seconds", "Time of each attempt on a node.",
            ["node"],
        )  # fmt: skip
        self.failures = plain_family(
            registry, "counter", "node_failures", "Attempts that failed against the node.",
            ["node"],
        )  # fmt: skip
        self.transitions = plain_family(
            registry, "counter", "breaker_transitions",
            "Breaker state changes, by the state entered.", ["node", "state"],
        )  # fmt: skip
        self.in_flight = registry.gauge("node_in_flight", "Requests in flight per node.", ["node"])
        self.score = registry.gauge(
            "node_score", "The post's intelligent score per node (0 to 1).", ["node"]
        )
        self.breaker_state = registry.gauge(
            "breaker_state", "Breaker state per node: 0 closed, 1 half-open, 2 open.", ["node"]
        )
        self._nodes: dict[str, NodeChildren] = {}

    def node(self, node_id: str) -> NodeChildren:
        children = self._nodes.get(node_id)
        if children is None:
            children = NodeChildren(
                self.picks.labels(node_id),
                self.node_latency.labels(node_id),
                self.failures.labels(node_id),
            )
            self._nodes[node_id] = children
        return children

    def forget(self, node_id: str) -> None:
        """Drop a removed node's series."""
        if self._nodes.pop(node_id, None) is None:
            return
        for family in (self.picks, self.node_latency, self.failures):
            family.remove(node_id)
        for gauge in (self.in_flight, self.score, self.breaker_state):
            try:
                gauge.remove(node_id)
            except KeyError:  # the monitoring loop never ran for it: there is no series
                continue


def orchestrator_snapshot(perf: PerformanceOrchestrator) -> dict[str, Any]:
    """What :meth:`PerformanceOrchestrator.snapshot` returns."""
    now = perf.clock.monotonic()
    nodes = []
    for entry in perf.registry.entries():
        stats = perf.tracker.stats(entry.id)
        breaker = perf.breakers.get(entry.id) if entry.id in perf.breakers else None
        m = entry.live_metrics()
        nodes.append(
            {
                "id": entry.id,
                "models": sorted(entry.spec.models),
                "capabilities": sorted(entry.spec.capabilities),
                "url": entry.spec.url,
                "cost_per_1k_tokens": entry.spec.cost_per_1k_tokens,
                "state": entry.state.value,
                "metrics": {
                    "cpu": m.cpu,
                    "memory": m.memory,
                    "queue_depth": m.queue_depth,
                    "in_flight": m.in_flight,
                },
                "capacity": entry.capacity,
                "score": perf.balancer.intelligent_score(entry.id),
                "excluded": perf.balancer.exclusion(entry.id, now),
                "breaker": breaker.describe(now) if breaker else {"state": "closed"},
                "stats": {
                    "requests": stats.requests,
                    "failures": stats.failures,
                    "latency_ewma": stats.latency,
                    "success_rate": stats.success_rate,
                    "performance": stats.performance(perf.balancer_settings.latency_scale),
                },
            }
        )
    return {
        "strategy": perf.balancer.strategy,
        "caching_strategy": perf.settings.caching_strategy,
        "cache": type(perf.cache).__name__ if perf.cache is not None else None,
        "auto_scaling": perf.settings.auto_scaling,
        "monitoring_interval": perf.settings.monitoring_interval,
        "nodes": nodes,
        "breakers": {n: s.value for n, s in perf.breakers.states().items()},
    }


def refresh_node_gauges(perf: PerformanceOrchestrator) -> None:
    """Set the per-node gauges (in flight, score, breaker state) from the live state."""
    m = perf._m
    for entry in perf.registry.entries():
        m.in_flight.labels(entry.id).set(entry.in_flight)
        m.score.labels(entry.id).set(perf.balancer.intelligent_score(entry.id))
        state = perf.breakers.get(entry.id).state if entry.id in perf.breakers else None
        m.breaker_state.labels(entry.id).set(BREAKER_STATE_VALUE[state.value] if state else 0.0)
