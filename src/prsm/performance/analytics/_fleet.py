"""The fleet's capacity and its bottleneck, from the analysed history.

Per node, the USL fitted on ``node.in_flight`` / ``node.request_rate``; where none can be fitted
(too few distinct concurrencies, or no contention seen) the node's capacity is unknown
(``None``, ``basis`` ``"unknown"``; ``capacity_at_least`` the busiest rate seen) and nothing
is judged against it;
for the gateway, the CPU a request costs, fitted on each gateway process's CPU use
(``system.process_cpu_usage``, percent of one core) against its request rate
(``application.request_rate``, the same labels: ``instance`` with several processes), pooled
over the processes. The fleet serves at most ``min(replicas × per-replica capacity, the gateway's
CPU ceiling)``; each node's :class:`~._capacity.CapacityModel` is its USL bounded by that ceiling
(which bound binds, the knee). The bottleneck is the stage requests spend most time in and the
resource with the least headroom (the highest utilisation saturates first as load grows).

With several gateway processes (``serve --workers N``) every process writes its own series to
the shared history, labelled ``instance="gateway-K"``, each counting only the requests it
handled. The fleet's figures are the processes' sum (:func:`fleet_series`): the arrival rate,
each node's request rate and requests in flight; latencies and stage times are pooled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from ._capacity import CapacityModel, CpuCost, UslFit, fit_cpu_cost, fit_usl
from ._settings import AnalyticsSettings

if TYPE_CHECKING:
    from ._analytics import SeriesData

#: what ``saturates_first`` names when the gateway's CPU has the least headroom
GATEWAY_CPU = "gateway CPU"
#: the label each gateway process of ``serve --workers N`` puts on its series
INSTANCE = "instance"

#: the trend of a series (``TrendDetector(...).analyze(...).as_dict()``), None if too short
TrendOf = Callable[["SeriesData"], "dict[str, Any] | None"]


def one(series: list[SeriesData]) -> SeriesData | None:
    """The unlabelled series (or the first) of a metric."""
    for sd in series:
        if not sd.labels:
            return sd
    return series[0] if series else None


def _fleet_labels(sd: SeriesData) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in sd.labels.items() if k != INSTANCE))


def _summed(parts: list[SeriesData]) -> SeriesData:
    """``parts`` (one series per process) added up at each timestamp; a process with no
    point at a timestamp (not started yet, or stopped) adds nothing there."""
    if len(parts) == 1:
        return parts[0]
    from ._analytics import SeriesData

    ts = np.unique(np.concatenate([p.ts for p in parts]))
    total = np.zeros(len(ts))
    for p in parts:
        np.add.at(total, np.searchsorted(ts, p.ts), p.values)
    return SeriesData(parts[0].metric, dict(_fleet_labels(parts[0])), ts, total)


def fleet_series(series: list[SeriesData]) -> list[SeriesData]:
    """One series per label set without ``instance``: the gateway processes' series summed
    (a single process's series unchanged, its trend kept)."""
    groups: dict[tuple[tuple[str, str], ...], list[SeriesData]] = {}
    for sd in series:
        groups.setdefault(_fleet_labels(sd), []).append(sd)
    return [_summed(parts) for parts in groups.values()]


def _pooled(series: list[SeriesData], label: str) -> dict[str, np.ndarray]:
    """Every process's values of each ``label`` value, pooled (for medians and means)."""
    out: dict[str, list[np.ndarray]] = {}
    for sd in series:
        out.setdefault(sd.labels.get(label, "?"), []).append(sd.values)
    return {k: np.concatenate(v) for k, v in out.items()}


def recent(values: np.ndarray) -> float:
    """The level at the end of the window: the mean of its last tenth (at least 3 points)."""
    k = max(3, len(values) // 10)
    return float(np.mean(values[-k:]))


def _paired(a: SeriesData, b: SeriesData) -> tuple[np.ndarray, np.ndarray]:
    """``a``'s and ``b``'s values at the timestamps both have."""
    _, i, j = np.intersect1d(a.ts, b.ts, return_indices=True)
    return a.values[i], b.values[j]


def _usl_for(rate: SeriesData, in_flight: SeriesData | None) -> UslFit | None:
    if in_flight is None:
        return None
    x, n = _paired(rate, in_flight)
    if len(x) < 3:
        return None
    try:
        return fit_usl(n, x)
    except ConfigError:
        return None  # too few distinct concurrencies to fit: the capacity is unknown


def gateway_cpu(
    data: Mapping[str, list[SeriesData]], s: AnalyticsSettings
) -> tuple[CpuCost, float, dict[str, Any]] | None:
    """The gateway's CPU cost (background summed over its processes), the cores it may use,
    and its figures; None without CPU and request-rate history to pair."""
    rates = {tuple(sorted(sd.labels.items())): sd for sd in data["application.request_rate"]}
    rate_all, cores_all = [], []
    now_rate = now_cores = 0.0
    processes = 0
    for sd in data["system.process_cpu_usage"]:
        rate = rates.get(tuple(sorted(sd.labels.items())))
        if rate is None:
            continue
        r, c = _paired(rate, sd)
        if len(r) < 3:
            continue
        processes += 1
        rate_all.append(r)
        cores_all.append(c / 100.0)  # psutil: 100 % is one core
        now_rate += recent(r)
        now_cores += recent(c / 100.0)
    if not processes:
        return None
    try:
        cost = fit_cpu_cost(np.concatenate(rate_all), np.concatenate(cores_all))
    except ConfigError:
        return None  # no interval served requests with CPU recorded: no CPU ceiling
    count = one(data["system.cpu_count"])
    machine = float(np.max(count.values)) if count is not None else math.inf
    cores = min(processes * s.gateway_cores_per_process, machine)
    total = CpuCost(
        cost.seconds_per_request, cost.background_cores * processes, cost.samples, cost.method
    )
    ceiling = total.ceiling(cores)
    info: dict[str, Any] = {
        **total.as_dict(),
        "processes": processes,
        "cores_per_process": s.gateway_cores_per_process,
        "machine_cores": machine if math.isfinite(machine) else None,
        "cores_available": cores,
        "cpu_ceiling": ceiling,
        "rate_now": now_rate,
        "cores_used_now": now_cores,
        "utilization": now_rate / ceiling if ceiling > 0 else math.inf,
    }
    return total, cores, info


def fleet_capacity(
    data: Mapping[str, list[SeriesData]], s: AnalyticsSettings, trend_of: TrendOf | None = None
) -> dict[str, Any]:
    """The ``capacity`` of the analysis (see the module docstring); ``trend_of`` gives the
    trend of the summed arrival rate when several processes wrote it."""
    processes = {
        sd.labels[INSTANCE] for sd in data["application.request_rate"] if INSTANCE in sd.labels
    }
    rate = one(fleet_series(data["application.request_rate"]))
    if rate is not None and rate.trend is None and trend_of is not None:
        rate.trend = trend_of(rate)
    node_rates = {sd.labels.get("node", ""): sd for sd in fleet_series(data["node.request_rate"])}
    in_flight = {sd.labels.get("node", ""): sd for sd in fleet_series(data["node.in_flight"])}
    p50 = _pooled(data["node.latency_p50"], "node")
    gw = gateway_cpu(data, s)
    cost, cores = (gw[0], gw[1]) if gw is not None else (None, 1.0)
    replicas = len(node_rates)
    nodes: dict[str, Any] = {}
    for node, sd in node_rates.items():
        info: dict[str, Any] = {"rate_now": recent(sd.values)}
        fit = _usl_for(sd, in_flight.get(node))
        if fit is not None and math.isfinite(fit.peak_throughput):
            info.update(usl=fit.as_dict(), capacity=fit.peak_throughput, basis="usl")
        else:
            # no USL to read a capacity from: the busiest rate seen is only a lower bound, and
            # a utilisation against it would call any steady load saturated
            info.update(capacity=None, capacity_at_least=float(np.max(sd.values)), basis="unknown")
        if fit is not None or cost is not None:
            info["model"] = CapacityModel(fit, cost, cores).as_dict()
        if node in p50:
            info["latency_p50"] = float(np.median(p50[node]))
        info["utilization"] = info["rate_now"] / info["capacity"] if info["capacity"] else None
        nodes[node] = info
    out: dict[str, Any] = {
        "replicas": replicas,
        "nodes": nodes,
        "processes": max(1, len(processes)),
    }
    out["node_rate_total"] = sum(n["rate_now"] for n in nodes.values())
    if gw is not None:
        out["gateway"] = gw[2]
    if rate is None or not nodes:
        return out
    caps = [n["capacity"] for n in nodes.values() if n["capacity"]]
    lat = [n["latency_p50"] for n in nodes.values() if "latency_p50" in n]
    if not caps:
        return out
    mu = float(np.median(caps))
    replica_total = replicas * mu
    cpu_ceiling = gw[2]["cpu_ceiling"] if gw is not None else math.inf
    out.update(
        arrival_rate_now=recent(rate.values),
        arrival_rate_p95=float(np.percentile(rate.values, 95)),
        arrival_rate_trend=rate.trend,
        per_replica_capacity=mu,
        fleet_capacity=min(replica_total, cpu_ceiling),
        binding="gateway_cpu" if cpu_ceiling < replica_total else "replicas",
        base_latency=float(np.median(lat)) if lat else None,
        latency_objective=s.latency_objective,
        latency_quantile=s.latency_quantile,
        utilization_now=recent(rate.values) / replica_total,
        utilization_p95=float(np.percentile(rate.values, 95)) / replica_total,
        utilization_mean=float(np.mean(rate.values)) / replica_total,
    )
    return out


def _cores(n: float) -> str:
    return f"{n:g} core" if n == 1 else f"{n:g} cores"


def _micro(seconds: float) -> str:
    return f"{seconds * 1e6:.3g} µs"


def bottleneck(stages: list[SeriesData], capacity: Mapping[str, Any]) -> dict[str, Any]:
    """Where requests' time goes and what saturates first, in one sentence with its figures."""
    means = {k: float(np.mean(v)) for k, v in _pooled(stages, "stage").items()}
    total = sum(means.values())
    out: dict[str, Any] = {
        "stages": {},
        "limiting_stage": None,
        "saturates_first": None,
        "resource": None,
    }
    parts = []
    if total > 0:
        shares = {k: v / total for k, v in sorted(means.items(), key=lambda kv: -kv[1])}
        out["stages"] = {k: {"mean_s": means[k], "share": sh} for k, sh in shares.items()}
        stage = next(iter(shares))
        out["limiting_stage"] = stage
        parts.append(
            f"requests spend {shares[stage]:.0%} of their time in '{stage}' "
            f"(mean {means[stage] * 1000:.1f} ms of {total * 1000:.1f} ms)"
        )
    candidates: dict[str, float] = {
        n: v["utilization"] for n, v in capacity.get("nodes", {}).items() if v.get("utilization")
    }
    gw = capacity.get("gateway")
    if gw is not None and gw["rate_now"] > 0:
        candidates[GATEWAY_CPU] = gw["utilization"]
    if candidates:
        name = max(candidates, key=lambda k: candidates[k])
        out["saturates_first"] = name
        if name == GATEWAY_CPU and gw is not None:
            out["resource"] = "cpu"
            parts.append(
                f"the gateway's CPU saturates first: it serves {gw['rate_now']:.3g} req/s of a "
                f"{gw['cpu_ceiling']:.3g} req/s ceiling ({_cores(gw['cores_available'])} at "
                f"{_micro(gw['cpu_seconds_per_request'])} CPU a request), "
                f"{gw['utilization']:.0%} used"
            )
        else:
            out["resource"] = "node"
            info = capacity["nodes"][name]
            parts.append(
                f"node '{name}' saturates first: it serves {info['rate_now']:.3g} req/s of a "
                f"{info['capacity']:.3g} req/s capacity ({info['basis']}), "
                f"{info['utilization']:.0%} used"
            )
    model = _knee_of(capacity, out["saturates_first"])
    if model is not None:
        bound = {"cpu": "the gateway's CPU", "coherency": "coherency", "contention": "contention"}
        parts.append(
            f"throughput is bound by {bound[model['binding']]} and flattens past "
            f"{model['knee_concurrency']:.0f} requests in flight"
        )
    out["sentence"] = ("The limit: " + "; ".join(parts) + ".") if parts else "No stage timings."
    return out


def _knee_of(capacity: Mapping[str, Any], first: str | None) -> dict[str, Any] | None:
    """The capacity model with a knee of the node that saturates first (of the busiest node
    when the gateway's CPU does)."""
    nodes = capacity.get("nodes", {})
    if first is None:
        return None
    if first == GATEWAY_CPU:
        busiest = max(nodes.items(), key=lambda kv: kv[1]["rate_now"], default=None)
        info = busiest[1] if busiest else {}
    else:
        info = nodes.get(first, {})
    model = info.get("model")
    if model is None or model["knee_concurrency"] is None or model["binding"] is None:
        return None
    return dict(model)
