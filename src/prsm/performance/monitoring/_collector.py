"""``MetricsCollector``: the application and business sections of a collection.

Everything comes from what the :class:`~._recorder.RequestRecorder` counted since the
previous collection (see :mod:`._deltas`) and from the pipeline's snapshot (nodes: load,
in flight, breaker, score, price). Per node and per model where it makes sense.

Application: request rate, latency percentiles, error rate, queue depth, in flight, cache hit
rate (overall and per tier, the semantic tier included), per-stage times, streams' time to
first token and time per output token. Business: active users (distinct tenants seen within
``active_users_window``), throughput (requests and tokens per second), cost per request from
node prices (``cost_per_1k_tokens`` of each node, times the tokens it served), and SLA
compliance (share of requests answered within ``latency_objective``; failures count as
misses).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol

from ._deltas import FamilyDeltas, HistDelta, Key, merge
from ._recorder import RequestRecorder
from ._stages import STAGES


class MonitoredPipeline(Protocol):
    """What the collector reads from the pipeline (a
    :class:`~prsm.performance.orchestrator.PerformanceOrchestrator`): its snapshot, whose
    ``nodes`` entries carry ``id``, ``models``, ``metrics`` (cpu, memory, queue_depth,
    in_flight), ``state``, ``score``, ``breaker`` and ``cost_per_1k_tokens``."""

    def snapshot(self) -> dict[str, Any]: ...


def _rate(n: float, dt: float) -> float | None:
    """Per second over the interval; ``None`` when the interval is unknown (the first
    collection before :meth:`MetricsCollector.start`)."""
    return n / dt if dt > 0 else None


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


class _Counts:
    """Requests of one group (all, one model, one node) in an interval."""

    __slots__ = ("cache_hits", "duration", "errors", "ok", "within")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.ok = 0
        self.errors = 0
        self.cache_hits = 0
        self.within = 0
        self.duration = HistDelta(bounds)

    @property
    def total(self) -> int:
        return self.ok + self.errors + self.cache_hits


class MetricsCollector:
    """Turns the recorder's counts and the pipeline's snapshot into the application and
    business sections (call :meth:`collect` once per interval, on the event loop)."""

    def __init__(
        self,
        recorder: RequestRecorder,
        pipeline: MonitoredPipeline | None = None,
        *,
        active_users_window: float = 300.0,
    ) -> None:
        self.recorder = recorder
        self.pipeline = pipeline
        self.active_users_window = active_users_window
        self._duration = FamilyDeltas(recorder.duration)
        self._upstream = FamilyDeltas(recorder.upstream)
        self._tokens = FamilyDeltas(recorder.tokens)
        self._stages = FamilyDeltas(recorder.stage_family)
        self._ttft = FamilyDeltas(recorder.ttft)
        self._tpot = FamilyDeltas(recorder.tpot)
        self._cache = FamilyDeltas(recorder.cache_lookups)
        registry = recorder.registry
        self._gateway = _optional(registry.get(f"{registry.namespace}_gateway_requests"))
        self._node_attempts = _optional(registry.get(f"{registry.namespace}_node_latency_seconds"))
        self._node_failures = _optional(registry.get(f"{registry.namespace}_node_failures"))
        self._tenants: deque[tuple[float, set[str]]] = deque()
        self._last: float | None = None
        self.cost_total = 0.0

    def start(self, now: float) -> None:
        """Count from monotonic ``now``: everything recorded before is left out of rates."""
        self._duration.histograms()
        self._upstream.histograms()
        self._tokens.histograms()
        self._stages.histograms()
        self._ttft.histograms()
        self._tpot.histograms()
        self._cache.counters()
        for extra in (self._gateway, self._node_attempts, self._node_failures):
            if extra is None:
                continue
            if extra.is_histogram:
                extra.histograms()
            else:
                extra.counters()
        self.recorder.take_tenants()
        self._last = now

    def collect(self, now: float) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(application, business)`` for the interval since the previous call (monotonic
        ``now``; the first call covers everything recorded so far)."""
        dt = now - self._last if self._last is not None else 0.0
        self._last = now
        objective = self.recorder.latency_objective
        bounds = self.recorder.duration_bounds
        snapshot = self.pipeline.snapshot() if self.pipeline is not None else {}
        nodes = {n["id"]: n for n in snapshot.get("nodes", ())}

        overall = _Counts(bounds)
        models: dict[str, _Counts] = {}
        for (_op, model, outcome, _err), d in self._duration.histograms().items():
            for group in (overall, models.setdefault(model, _Counts(bounds))):
                n = d.count
                if outcome == "ok":
                    group.ok += n
                elif outcome == "cache_hit":
                    group.cache_hits += n
                else:
                    group.errors += n
                if outcome != "error":
                    group.within += d.at_most(objective)
                group.duration.add(d)

        up_bounds = self.recorder.upstream.bounds
        node_up: dict[str, list[HistDelta]] = {}
        for (_op, _model, node, _err), d in self._upstream.histograms().items():
            node_up.setdefault(node, []).append(d)

        tokens = self._tokens.histograms()
        model_tokens: dict[str, dict[str, float]] = {}
        node_tokens: dict[str, float] = {}
        model_cost: dict[str, float] = {}
        cost = 0.0
        for (_op, model, node, kind), d in tokens.items():
            per = model_tokens.setdefault(model, {"input": 0.0, "output": 0.0})
            per[kind] = per.get(kind, 0.0) + d.sum
            node_tokens[node] = node_tokens.get(node, 0.0) + d.sum
            price = float(nodes.get(node, {}).get("cost_per_1k_tokens") or 0.0)
            c = d.sum * price / 1000.0
            cost += c
            model_cost[model] = model_cost.get(model, 0.0) + c
        self.cost_total += cost

        application = self._application(
            dt, overall=overall, models=models, model_tokens=model_tokens, nodes=nodes
        )
        application["nodes"] = self._nodes(
            dt, nodes=nodes, node_up=node_up, bounds=up_bounds, node_tokens=node_tokens
        )
        business = self._business(
            now, dt, overall=overall, models=models, model_tokens=model_tokens, cost=cost,
            model_cost=model_cost,
        )  # fmt: skip
        return application, business

    # -- sections -------------------------------------------------------------------------

    def _application(
        self,
        dt: float,
        *,
        overall: _Counts,
        models: dict[str, _Counts],
        model_tokens: dict[str, dict[str, float]],
        nodes: Mapping[str, Any],
    ) -> dict[str, Any]:
        lookups = self._cache.counters()
        looked = sum(lookups.values())
        hits = {k[0]: v for k, v in lookups.items() if k[0] != "miss"}
        stages = {key[0]: d.summary() for key, d in self._stages.histograms().items() if d.count}
        ttft = self._by_model(self._ttft.histograms())
        tpot = self._by_model(self._tpot.histograms())
        queue = sum(int(n.get("metrics", {}).get("queue_depth") or 0) for n in nodes.values())
        in_flight = sum(int(n.get("metrics", {}).get("in_flight") or 0) for n in nodes.values())
        d = overall.duration
        rejected = 0.0
        if self._gateway is not None:
            rejected = sum(v for k, v in self._gateway.counters().items() if k[1].startswith("4"))
        per_model = {}
        for model, c in sorted(models.items()):
            t = model_tokens.get(model, {})
            per_model[model] = {
                "request_rate": _rate(c.total, dt),
                "requests": c.total,
                "error_rate": _share(c.errors, c.total),
                "cache_hit_rate": _share(c.cache_hits, c.total),
                "response_time_p50": c.duration.quantile(0.5),
                "response_time_p95": c.duration.quantile(0.95),
                "response_time_p99": c.duration.quantile(0.99),
                "tokens_per_s": _rate(t.get("input", 0.0) + t.get("output", 0.0), dt),
                "time_to_first_token_p50": ttft[model].quantile(0.5) if model in ttft else None,
                "time_to_first_token_p95": ttft[model].quantile(0.95) if model in ttft else None,
                "time_per_output_token_p50": tpot[model].quantile(0.5) if model in tpot else None,
            }
        return {
            "request_rate": _rate(overall.total, dt),
            "requests": overall.total,
            "errors": overall.errors,
            "response_time_p50": d.quantile(0.5),
            "response_time_p95": d.quantile(0.95),
            "response_time_p99": d.quantile(0.99),
            "response_time_mean": d.mean(),
            "error_rate": _share(overall.errors, overall.total),
            "rejected_rate": _rate(rejected, dt),
            "queue_depth": queue,
            "in_flight": in_flight,
            "cache_hit_rate": _share(sum(hits.values()), looked),
            "cache_hit_rates": {tier: hits[tier] / looked for tier in sorted(hits)},
            "cache_lookups": looked,
            "stages": {s: stages[s] for s in STAGES if s in stages},
            "time_to_first_token_p50": merge(ttft.values(), self.recorder.ttft.bounds).quantile(
                0.5
            ),
            "time_to_first_token_p95": merge(ttft.values(), self.recorder.ttft.bounds).quantile(
                0.95
            ),
            "models": per_model,
        }

    def _nodes(
        self,
        dt: float,
        *,
        nodes: Mapping[str, Any],
        node_up: dict[str, list[HistDelta]],
        bounds: tuple[float, ...],
        node_tokens: dict[str, float],
    ) -> dict[str, Any]:
        attempts = (
            {k[0]: d for k, d in self._node_attempts.histograms().items()}
            if self._node_attempts is not None
            else {}
        )
        failures = (
            {k[0]: v for k, v in self._node_failures.counters().items()}
            if self._node_failures is not None
            else {}
        )
        out: dict[str, Any] = {}
        for node_id in sorted(set(nodes) | set(node_up) | set(attempts)):
            if not node_id:
                continue
            info = nodes.get(node_id, {})
            live = info.get("metrics", {})
            d = attempts.get(node_id) or merge(node_up.get(node_id, ()), bounds)
            n = d.count
            breaker = info.get("breaker", {})
            out[node_id] = {
                "request_rate": _rate(n, dt),
                "error_rate": _share(failures.get(node_id, 0.0), n),
                "latency_p50": d.quantile(0.5),
                "latency_p95": d.quantile(0.95),
                "tokens_per_s": _rate(node_tokens.get(node_id, 0.0), dt),
                "in_flight": live.get("in_flight"),
                "queue_depth": live.get("queue_depth"),
                "cpu": live.get("cpu"),
                "memory": live.get("memory"),
                "score": info.get("score"),
                "state": info.get("state"),
                "breaker": breaker.get("state") if isinstance(breaker, dict) else breaker,
                "cost_per_1k_tokens": info.get("cost_per_1k_tokens"),
            }
        return out

    def _business(
        self,
        now: float,
        dt: float,
        *,
        overall: _Counts,
        models: dict[str, _Counts],
        model_tokens: dict[str, dict[str, float]],
        cost: float,
        model_cost: dict[str, float],
    ) -> dict[str, Any]:
        window = self._tenants
        window.append((now, self.recorder.take_tenants()))
        while window and window[0][0] < now - self.active_users_window:
            window.popleft()
        active: set[str] = set()
        for _, seen in window:
            active |= seen
        inp = sum(t.get("input", 0.0) for t in model_tokens.values())
        out = sum(t.get("output", 0.0) for t in model_tokens.values())
        return {
            "active_users": len(active),
            "requests_per_user": _share(overall.total, len(active)),
            "throughput": {
                "requests_per_s": _rate(overall.total, dt),
                "tokens_per_s": _rate(inp + out, dt),
                "input_tokens_per_s": _rate(inp, dt),
                "output_tokens_per_s": _rate(out, dt),
            },
            "cost_per_request": _share(cost, overall.total),
            "cost_per_s": _rate(cost, dt),
            "cost_total": self.cost_total,
            "sla_compliance": _share(overall.within, overall.total),
            "sla_objective_s": self.recorder.latency_objective,
            "sla_violations": overall.total - overall.within,
            "models": {
                model: {
                    "cost_per_request": _share(model_cost.get(model, 0.0), c.total),
                    "sla_compliance": _share(c.within, c.total),
                    "sla_violations": c.total - c.within,
                    "errors": c.errors,
                    "requests": c.total,
                }
                for model, c in sorted(models.items())
            },
        }

    @staticmethod
    def _by_model(deltas: dict[Key, HistDelta]) -> dict[str, HistDelta]:
        out: dict[str, HistDelta] = {}
        for (_op, model), d in deltas.items():
            found = out.get(model)
            if found is None:
                out[model] = d
            else:
                found.add(d)
        return out


def _optional(family: Any) -> FamilyDeltas | None:
    """Deltas of a family another component registers (absent: ``None``)."""
    return FamilyDeltas(family) if family is not None and hasattr(family, "children") else None
