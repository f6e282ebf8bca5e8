"""Capacity models against a load sweep of the real gateway: does the Universal Scalability
Law fitted on light load predict where throughput flattens and latency turns up?

A real ``prsm-perf serve`` (one process, pinned alone to CPU 0) in front of the upstream
simulator answering after ``--latency`` seconds; the load generator and the simulator share
CPU 1. Closed loop: N connections each send their next request as soon as the last is
answered, for N in ``--levels``. The USL (``prsm.performance.analytics.fit_usl``, what the
analytics fit from a node's history) is fitted on the levels up to ``--fit-upto`` only, then
asked for the others: throughput, latency (by Little's law, N / X(N)) and the knee (the
smallest N reaching 90 % of the throughput ceiling), each against what was measured.

Alongside it, the bounded model the analytics use (``CapacityModel``): the same USL capped by
the gateway's CPU ceiling, ``cores / CPU seconds a request``, with the CPU cost fitted
(``fit_cpu_cost``) from the gateway's own monitoring history over the fitted levels only
(``system.process_cpu_usage`` against ``application.request_rate``, one point a second, read
from ``/admin/metrics/history``) and one core (the gateway is pinned to one).

    python -m benchmarks.capacity [--quick] [--plot] [--latency 0.005] [--duration 3]
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks._gateway_peers import MODEL, load, pin, start_ours, start_sim
from benchmarks._harness import Report, parser
from prsm.performance.analytics import CapacityModel, CpuCost, fit_cpu_cost, fit_usl
from prsm.performance.analytics._capacity import KNEE_SHARE
from prsm.performance.errors import ConfigError

NAME = "capacity"
GOAL = (
    "the capacity model fitted on the lower levels (the USL bounded by the CPU ceiling) predicts "
    "the held-out levels' throughput within 15 % and the knee (90 % of the ceiling) within one "
    "sweep level"
)


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def knee(levels: list[int], throughput: list[float], ceiling: float) -> int | None:
    """The smallest level whose throughput reaches ``KNEE_SHARE`` of ``ceiling``."""
    for n, x in zip(levels, throughput, strict=True):
        if x >= KNEE_SHARE * ceiling:
            return n
    return None


def history(port: int, metric: str, since: float, until: float) -> dict[float, float]:
    """One unlabelled series of the gateway's own history (admin API, open on loopback)."""
    query = urllib.parse.urlencode({"metric": metric, "since": since, "until": until})
    url = f"http://127.0.0.1:{port}/admin/metrics/history?{query}"
    with urllib.request.urlopen(url, timeout=10) as reply:
        body = json.loads(reply.read())
    for series in body["series"]:
        if not series["labels"]:
            return {float(t): float(v) for t, v in series["points"] if v is not None}
    return {}


def cpu_history(
    port: int, since: float, until: float
) -> tuple[list[float], list[float], list[float]]:
    """(times, request rates, cores used) a second, where both were recorded."""
    rate = history(port, "application.request_rate", since, until)
    cpu = history(port, "system.process_cpu_usage", since, until)
    times = sorted(set(rate) & set(cpu))
    return times, [rate[t] for t in times], [cpu[t] / 100.0 for t in times]


def main() -> None:
    p = parser(NAME, "USL capacity model vs a load sweep of the real gateway.")
    p.add_argument("--levels", type=ints, default=None, help="concurrency levels (closed loop)")
    p.add_argument("--fit-upto", type=int, default=None, help="fit on levels up to this")
    p.add_argument("--latency", type=float, default=0.005, help="simulator latency, seconds")
    p.add_argument("--duration", type=float, default=None, help="seconds per level")
    args = p.parse_args()
    if args.quick:
        levels = args.levels or [1, 2, 4, 8]
        fit_upto, duration, warmup = args.fit_upto or 8, args.duration or 0.5, 0.3
    else:
        levels = args.levels or [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256]
        fit_upto, duration, warmup = args.fit_upto or 48, args.duration or 3.0, 1.0
    report = Report(NAME, GOAL)
    measured: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PRSM_DATA_DIR"] = tmp  # the gateway's history file: this run's only
        sim = start_sim("--latency", str(args.latency))
        gw = None
        try:
            # the node may take any number of requests at once: the sweep measures the
            # gateway, not the node's configured cap
            gw = start_ours(sim, Path(tmp), max_concurrency=100_000)
            pin(gw.proc.pid, {0})
            pin(sim.proc.pid, {1})
            body = Path(tmp) / "body.json"
            body.write_text(
                json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
            )
            for n in levels:
                out = load(gw.port, body, rate=0, duration=duration, warmup=warmup,
                           connections=n, cpus={1})  # fmt: skip
                errors = sum(out["errors"].values()) if out["errors"] else 0
                measured.append({"n": n, "x": out["achieved"], "p50": out["p50"],
                                 "p99": out["p99"], "errors": errors,
                                 "until": time.time()})  # fmt: skip
            time.sleep(2.5)  # the last second's collection flushed to the history
            since = measured[0]["until"] - duration - warmup - 5
            times, rates, cores = cpu_history(gw.port, since, time.time())
        finally:
            if gw is not None:
                gw.stop()
            sim.stop()
    xs = [m["x"] for m in measured]
    fit_rows = [m for m in measured if m["n"] <= fit_upto]
    fit = fit_usl([m["n"] for m in fit_rows], [m["x"] for m in fit_rows])
    fitted_until = max(m["until"] for m in fit_rows)
    own = [i for i, t in enumerate(times) if t <= fitted_until]
    try:
        cost: CpuCost | None = fit_cpu_cost([rates[i] for i in own], [cores[i] for i in own])
    except ConfigError as exc:  # --quick: the fitted levels may span under 3 collections
        report.notes.append(f"no CPU ceiling: {exc}")
        cost = None
    model = CapacityModel(fit, cost, cores=1.0)
    for m in measured:
        n, x = m["n"], m["x"]
        pred, bounded = fit.throughput(n), model.throughput(n)
        # CPU a request at this level, from the history's seconds inside it (load flowing)
        inside = [cores[i] / rates[i] for i, t in enumerate(times)
                  if m["until"] - duration <= t <= m["until"] and rates[i] > 0.5 * x]  # fmt: skip
        report.add(
            concurrency=n,
            used_for="fit" if n <= fit_upto else "held out",
            measured_rps=round(x, 1),
            usl_rps=round(pred, 1),
            usl_error=round(pred / x - 1, 3) if x else None,
            bounded_rps=round(bounded, 1),
            bounded_error=round(bounded / x - 1, 3) if x else None,
            measured_latency_ms=round(1000 * n / x, 2) if x else None,
            usl_latency_ms=round(1000 * n / pred, 2) if pred else None,
            bounded_latency_ms=round(1000 * n / bounded, 2) if bounded else None,
            p99_ms=round(1000 * m["p99"], 2) if m["p99"] is not None else None,
            cpu_us_per_request=round(1e6 * statistics.median(inside), 1) if inside else None,
            errors=m["errors"],
        )
    held = [r for r in report.rows if r["used_for"] == "held out" and r["usl_error"] is not None]
    worst = max((abs(r["usl_error"]) for r in held), default=None)
    worst_bounded = max((abs(r["bounded_error"]) for r in held), default=None)
    knee_measured = knee(levels, xs, max(xs))
    knee_usl = CapacityModel(fit).knee
    knee_bounded = model.knee
    report.extra["usl"] = fit.as_dict()
    report.extra["bounded"] = model.as_dict()
    report.extra["knee"] = {
        "measured": knee_measured,
        "usl": knee_usl,
        "bounded": knee_bounded,
        "measured_ceiling_rps": max(xs),
        "bounded_ceiling_rps": model.ceiling,
    }
    report.extra["setup"] = {
        "simulator_latency_s": args.latency,
        "levels": levels,
        "fit_upto": fit_upto,
        "seconds_per_level": duration,
        "placement": "gateway alone on CPU 0; simulator and load generator on CPU 1",
    }
    if worst is not None and worst_bounded is not None:
        report.ratio_vs_peer = {
            "worst_held_out_error_bounded": worst_bounded,
            "worst_held_out_error_usl": worst,
        }
    if not args.quick and worst_bounded is not None and knee_measured is not None:
        i = levels.index(knee_measured)
        lo, hi = levels[max(0, i - 1)], levels[min(len(levels) - 1, i + 1)]
        report.meets_goal = {
            "throughput_within_15pct": worst_bounded <= 0.15,
            "knee_within_one_level": knee_bounded is not None and lo <= knee_bounded <= hi,
        }

    def at(v: float | None) -> str:
        return "none" if v is None else f"N={v:.1f}"

    report.notes.append(
        f"USL on levels <= {fit_upto}: lambda {fit.lam:.1f} req/s, sigma {fit.sigma:.4f}, "
        f"kappa {fit.kappa:.2e}, peak {fit.peak_throughput:,.0f} req/s at N* "
        f"{fit.peak_concurrency:.3g}"
    )
    if cost is not None:
        report.notes.append(
            f"CPU from the history over the same levels ({cost.samples} s, {cost.method}): "
            f"{1e6 * cost.seconds_per_request:.1f} us a request + {cost.background_cores:.3f} "
            f"cores background -> ceiling {model.cpu_ceiling:,.0f} req/s on 1 core; binds: "
            f"{model.binding}"
        )
    report.notes.append(
        f"knee (90 % of the ceiling): measured N={knee_measured} "
        f"(ceiling {max(xs):,.0f} req/s), bounded model {at(knee_bounded)} "
        f"({model.ceiling:,.0f} req/s), plain USL {at(knee_usl)}"
    )
    report.finish(args, plot)


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.rows
    n = [r["concurrency"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    fit_n = [r["concurrency"] for r in rows if r["used_for"] == "fit"]
    a.plot(n, [r["measured_rps"] for r in rows], "o-", label="measured")
    a.plot(n, [r["usl_rps"] for r in rows], "--", label="USL (fitted on the first levels)")
    a.plot(n, [r["bounded_rps"] for r in rows], "-.", label="USL bounded by the CPU ceiling")
    a.axvspan(min(fit_n), max(fit_n), alpha=0.1, label="fitted on")
    a.set_xlabel("concurrency (closed loop)")
    a.set_ylabel("requests/s")
    a.legend()
    b.plot(n, [r["measured_latency_ms"] for r in rows], "o-", label="measured (mean)")
    b.plot(n, [r["usl_latency_ms"] for r in rows], "--", label="USL (Little's law)")
    b.plot(n, [r["bounded_latency_ms"] for r in rows], "-.", label="bounded (Little's law)")
    b.set_xlabel("concurrency")
    b.set_ylabel("latency, ms")
    b.legend()
    fig.suptitle("capacity: the USL, and the USL bounded by the CPU, against the real gateway")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
