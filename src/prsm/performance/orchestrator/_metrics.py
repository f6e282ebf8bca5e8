"""The orchestrator's metrics and snapshot.

The per-request series are plain Python counters and histograms
(:class:`~prsm.performance.monitoring.PlainFamily`, kept in the injected registry), turned
into Prometheus families only when the registry is scraped. Gauges refreshed by the
monitoring loop stay prometheus_client gauges.

Families (all prefixed ``prsm_``):

* ``orchestrator_requests_total{outcome}`` — ``ok``, ``error``, ``cache_hit``;
* ``orchestrator_request_latency_seconds`` — what callers waited for the answer (for a
  stream: for its first chunk);
* ``orchestrator_retries_total{reason}`` — attempts after a failure, by what failed
  (:func:`~._retry.failure_reason`: ``server_error``, ``timeout``, ``node_auth``, …);
* ``orchestrator_gave_up_total{reason}`` — requests that stopped retrying and failed, by why
  (:data:`~._retry.STOP_REASONS`);
* ``orchestrator_hedges_total{outcome}`` — hedging (:mod:`._hedge`): ``sent`` (a hedge
  attempt went out), ``won`` (it answered first; the first attempt was cancelled),
  ``cancelled`` (the first attempt answered first; the hedge was cancelled), ``failed`` (the
  hedge failed), ``skipped_budget`` / ``skipped_deadline`` / ``skipped_no_node`` (the delay
  passed but no hedge was sent, and why);
* ``node_picks_total{node}`` — the balancer chose the node;
* ``node_latency_seconds{node}`` — each attempt's time until the node answered (for a stream:
  its first chunk, not the stream's length);
* ``node_failures_total{node}`` — attempts that failed in a way that counts against the node;
* ``breaker_transitions_total{node,state}`` — a node's breaker entered ``state``;
* gauges refreshed by the monitoring loop: ``node_in_flight{node}``,
  ``node_score{node}``, ``breaker_state{node}`` (0 closed, 1 half-open, 2 open).
"""

from __future__ import annotations

from typing import Any

from ..monitoring._plain import PlainCounter
from ..monitoring._registry import MetricsRegistry, plain_family
from ..resilience._breaker import BreakerSet
from ..routing._balancer import AILoadBalancer
from ..routing._registry import NodeRegistry
from ..routing._tracker import PerformanceTracker

BREAKER_STATE_VALUE = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


class NodeChildren:
    """One node's labelled children (``picks`` a plain counter: the hot path adds to its
    ``value`` inline)."""

    __slots__ = ("failures", "latency", "picks")

    def __init__(self, picks: PlainCounter, latency: Any, failures: Any) -> None:
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
        self.ok: PlainCounter = requests.labels("ok")  # (the hot path adds to its value)
        self.error = requests.labels("error")
        self.cache_hit = requests.labels("cache_hit")
        self.latency = plain_family(
            registry, "histogram", "orchestrator_request_latency_seconds",
            "Time a handle() caller waited.",
        ).labels()  # fmt: skip
        self.retries = plain_family(
            registry, "counter", "orchestrator_retries",
            "Attempts after a retryable failure, by what failed.", ["reason"],
        )  # fmt: skip
        self.gave_up = plain_family(
            registry, "counter", "orchestrator_gave_up",
            "Requests that stopped retrying and failed, by why.", ["reason"],
        )  # fmt: skip
        self.hedges = plain_family(
            registry, "counter", "orchestrator_hedges",
            "Hedged attempts for slow unary requests, by outcome.", ["outcome"],
        )  # fmt: skip
        #: outcomes: resumed, failed, finished, no_node, no_budget, exhausted, unsupported
        self.stream_resumes = plain_family(
            registry, "counter", "orchestrator_stream_resumes",
            "Streams that broke after their first chunk, by what their resume did.", ["outcome"],
        )  # fmt: skip
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

    def refresh(
        self, registry: NodeRegistry, balancer: AILoadBalancer, breakers: BreakerSet
    ) -> None:
        """Set the per-node gauges (in flight, score, breaker state) from the live state."""
        for entry in registry.entries():
            self.in_flight.labels(entry.id).set(entry.in_flight)
            self.score.labels(entry.id).set(balancer.intelligent_score(entry.id))
            state = breakers.get(entry.id).state if entry.id in breakers else None
            value = BREAKER_STATE_VALUE[state.value] if state else 0.0
            self.breaker_state.labels(entry.id).set(value)


def node_snapshots(
    registry: NodeRegistry,
    tracker: PerformanceTracker,
    balancer: AILoadBalancer,
    breakers: BreakerSet,
    *,
    latency_scale: float,
    now: float,
) -> list[dict[str, Any]]:
    """Each node with its metrics, score, exclusion, breaker and learned figures (what
    :meth:`PerformanceOrchestrator.snapshot` lists)."""
    nodes = []
    for entry in registry.entries():
        stats = tracker.stats(entry.id)
        breaker = breakers.get(entry.id) if entry.id in breakers else None
        m = entry.live_metrics()
        nodes.append(
            {
                "id": entry.id,
                "models": sorted(entry.spec.models),
                "capabilities": sorted(entry.spec.capabilities),
                "url": entry.spec.url,
                "state": entry.state.value,
                "metrics": {
                    "cpu": m.cpu,
                    "memory": m.memory,
                    "queue_depth": m.queue_depth,
                    "in_flight": m.in_flight,
                },
                "load": balancer.load_report(entry.id, now),
                "capacity": entry.capacity,
                "cost_per_1k_tokens": entry.spec.cost_per_1k_tokens,
                "score": balancer.intelligent_score(entry.id, now),
                "excluded": balancer.exclusion(entry.id, now),
                "breaker": breaker.describe(now) if breaker else {"state": "closed"},
                "stats": {
                    "requests": stats.requests,
                    "failures": stats.failures,
                    "latency_ewma": stats.latency,
                    "success_rate": stats.success_rate,
                    "performance": stats.performance(latency_scale),
                },
            }
        )
    return nodes
