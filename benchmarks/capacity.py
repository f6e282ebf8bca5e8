"""Capacity models against a load sweep of the real gateway: does the Universal Scalability
Law fitted on light load predict where throughput flattens and latency turns up?

A real ``prsm-perf serve`` (one process, pinned alone to CPU 0) in front of the upstream
simulator answering after ``--latency`` seconds; the load generator and the simulator share
CPU 1. Closed loop: N connections each send their next request as soon as the last is
answered, for N in ``--levels``. The USL (``prsm.performance.analytics.fit_usl``, what the
analytics fit from a node's history) is fitted on the levels up to ``--fit-upto`` only, then
asked for the others: throughput, latency (by Little's law, N / X(N)) and the knee (the
smallest N reaching 90 % of the throughput ceiling), each against what was measured.

    python -m benchmarks.capacity [--quick] [--plot] [--latency 0.005] [--duration 3]
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._gateway_peers import MODEL, load, pin, start_ours, start_sim
from benchmarks._harness import Report, parser
from prsm.performance.analytics import fit_usl

NAME = "capacity"
GOAL = (
    "the USL fitted on the lower levels predicts the held-out levels' throughput within 15 % and "
    "the knee (90 % of the ceiling) within one sweep level"
)
KNEE_SHARE = 0.9


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def predicted_knee(fit: Any, ceiling: float, limit: float = 1e6) -> float | None:
    """The smallest concurrency at which the fitted curve reaches ``KNEE_SHARE`` of
    ``ceiling`` (bisection on the rising part), or ``None`` below ``limit``."""
    target = KNEE_SHARE * ceiling
    top = min(fit.peak_concurrency, limit)
    if fit.throughput(top) < target:
        return None
    lo, hi = 1.0, top
    for _ in range(100):
        mid = (lo + hi) / 2
        if fit.throughput(mid) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def knee(levels: list[int], throughput: list[float], ceiling: float) -> int | None:
    """The smallest level whose throughput reaches ``KNEE_SHARE`` of ``ceiling``."""
    for n, x in zip(levels, throughput, strict=True):
        if x >= KNEE_SHARE * ceiling:
            return n
    return None


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
                                 "p99": out["p99"], "errors": errors})  # fmt: skip
        finally:
            if gw is not None:
                gw.stop()
            sim.stop()
    xs = [m["x"] for m in measured]
    fit_rows = [m for m in measured if m["n"] <= fit_upto]
    fit = fit_usl([m["n"] for m in fit_rows], [m["x"] for m in fit_rows])
    for m in measured:
        n, x = m["n"], m["x"]
        pred = fit.throughput(n)
        report.add(
            concurrency=n,
            used_for="fit" if n <= fit_upto else "held out",
            measured_rps=round(x, 1),
            predicted_rps=round(pred, 1),
            error=round(pred / x - 1, 3) if x else None,
            measured_latency_ms=round(1000 * n / x, 2) if x else None,
            predicted_latency_ms=round(1000 * n / pred, 2) if pred else None,
            p99_ms=round(1000 * m["p99"], 2) if m["p99"] is not None else None,
            errors=m["errors"],
        )
    held = [r for r in report.rows if r["used_for"] == "held out" and r["error"] is not None]
    worst = max((abs(r["error"]) for r in held), default=None)
    knee_measured = knee(levels, xs, max(xs))
    ceiling = fit.peak_throughput
    knee_predicted = predicted_knee(fit, ceiling) if math.isfinite(ceiling) else None
    report.extra["usl"] = fit.as_dict()
    report.extra["knee"] = {"measured": knee_measured, "predicted": knee_predicted}
    report.extra["setup"] = {
        "simulator_latency_s": args.latency,
        "levels": levels,
        "fit_upto": fit_upto,
        "seconds_per_level": duration,
        "placement": "gateway alone on CPU 0; simulator and load generator on CPU 1",
    }
    report.ratio_vs_peer = {"worst_held_out_error": worst} if worst is not None else None
    if not args.quick and worst is not None and knee_measured is not None:
        i = levels.index(knee_measured)
        lo, hi = levels[max(0, i - 1)], levels[min(len(levels) - 1, i + 1)]
        report.meets_goal = {
            "throughput_within_15pct": worst <= 0.15,
            "knee_within_one_level": knee_predicted is not None and lo <= knee_predicted <= hi,
        }
    report.notes.append(
        f"USL on levels <= {fit_upto}: lambda {fit.lam:.1f} req/s, sigma {fit.sigma:.4f}, "
        f"kappa {fit.kappa:.2e}, peak {fit.peak_throughput:,.0f} req/s at N* "
        f"{fit.peak_concurrency:.3g}; knee (90 % of the ceiling) measured at N={knee_measured}, "
        f"predicted N={knee_predicted if knee_predicted is None else round(knee_predicted, 1)}"
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
    a.plot(n, [r["predicted_rps"] for r in rows], "--", label="USL (fitted on the first levels)")
    a.axvspan(min(fit_n), max(fit_n), alpha=0.1, label="fitted on")
    a.set_xlabel("concurrency (closed loop)")
    a.set_ylabel("requests/s")
    a.legend()
    b.plot(n, [r["measured_latency_ms"] for r in rows], "o-", label="measured (mean)")
    b.plot(n, [r["predicted_latency_ms"] for r in rows], "--", label="USL (Little's law)")
    b.set_xlabel("concurrency")
    b.set_ylabel("latency, ms")
    b.legend()
    fig.suptitle("capacity: the USL against a sweep of the real gateway")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
