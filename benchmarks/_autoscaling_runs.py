"""The autoscaling benchmark's runs (see :mod:`benchmarks.autoscaling`): simulations in
several processes, the tuning rule on the fitting period, the report-period frontier and
variants (shown, never used to choose), the fitting-period analysis and the goal's judge."""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from benchmarks._autoscaling_setup import (
    BURST_VARIANTS,
    HPA_WINDOWS,
    PEERS,
    POLICIES,
    PREDICTABILITY_SPLIT,
    predictive_params,
)
from prsm.performance.sim import Scenario, SimulationResult, run_policies


def _simulate(scenario: Scenario, policy: str, params: dict[str, Any] | None) -> SimulationResult:
    return run_policies(scenario, [policy], params={policy: params or {}})[policy]


def simulate_all(
    scenario: Scenario, runs: list[tuple[str, dict[str, Any] | None]], jobs: int
) -> list[SimulationResult]:
    """Each ``(policy, params)`` of ``runs`` simulated on ``scenario``, in ``runs``' order, in
    ``jobs`` processes (virtual time: the figures do not depend on how many)."""
    if jobs <= 1 or len(runs) <= 1:
        return [_simulate(scenario, policy, params) for policy, params in runs]
    with ProcessPoolExecutor(max_workers=min(jobs, len(runs))) as pool:
        futures = [pool.submit(_simulate, scenario, policy, params) for policy, params in runs]
        return [f.result() for f in futures]


def tune(
    fit: Scenario, grid: list[dict[str, Any]], quick: bool, jobs: int = 1
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Choose ours on the fitting period: the fewest violation minutes among the settings
    that use no more replica-hours than the best peer there and ≤ 1.15× the oracle."""
    names = POLICIES if not quick else ("hpa", "oracle")
    points = grid[:2] if quick else grid
    runs: list[tuple[str, dict[str, Any] | None]] = [(n, None) for n in names]
    runs += [("predictive", predictive_params(params, quick)) for params in points]
    done = simulate_all(fit, runs, jobs)
    rows = {
        n: r.summary(fit.report_start, fit.report_end)
        for n, r in zip(names, done[: len(names)], strict=True)
    }
    peers = [rows[p] for p in PEERS if p in rows]
    best = min(peers, key=lambda r: (r["violation_minutes"], r["replica_hours"]))
    budget = min(best["replica_hours"], 1.15 * rows["oracle"]["replica_hours"])
    tried = []
    for params, res in zip(points, done[len(names) :], strict=True):
        sm = res.summary(fit.report_start, fit.report_end)
        tried.append(
            {
                **params,
                "replica_hours": sm["replica_hours"],
                "violation_minutes": sm["violation_minutes"],
            }
        )
        print(
            f"tune {params}: {sm['replica_hours']} replica-h, "
            f"{sm['violation_minutes']} violation-min",
            flush=True,
        )
    within = [t for t in tried if t["replica_hours"] <= budget]
    pool = within or tried
    choice = (
        min(pool, key=lambda t: (t["violation_minutes"], t["replica_hours"]))
        if within
        else min(pool, key=lambda t: t["replica_hours"])
    )
    chosen = {k: choice[k] for k in grid[0]}
    peer_rows = [
        {"policy": n, **{k: v for k, v in r.items() if k != "policy"}} for n, r in rows.items()
    ]
    return chosen, [
        {"budget_replica_hours": round(budget, 2), "best_peer": best["policy"]},
        *peer_rows,
        *tried,
    ]


def report_frontier(
    scenario: Scenario, grid: list[dict[str, Any]], quick: bool
) -> list[dict[str, Any]]:
    """The trade-off on the report period (shown, never used to choose): ours at every grid
    point and the HPA at every scale-down stabilisation window of :data:`HPA_WINDOWS`."""
    rows: list[dict[str, Any]] = []
    a, b = scenario.report_start, scenario.report_end
    for window in HPA_WINDOWS[:2] if quick else HPA_WINDOWS:
        res = run_policies(scenario, ["hpa"], params={"hpa": {"scale_down_stabilization": window}})
        sm = res["hpa"].summary(a, b)
        rows.append(
            {
                "policy": "hpa",
                "scale_down_stabilization": window,
                "replica_hours": sm["replica_hours"],
                "violation_minutes": sm["violation_minutes"],
            }
        )
    for params in grid[:2] if quick else grid:
        res = run_policies(
            scenario, ["predictive"], params={"predictive": predictive_params(params, quick)}
        )
        sm = res["predictive"].summary(a, b)
        rows.append(
            {
                "policy": "predictive",
                **params,
                "replica_hours": sm["replica_hours"],
                "violation_minutes": sm["violation_minutes"],
            }
        )
    for row in rows:
        print(f"report-period frontier: {row}", flush=True)
    return rows


def analyse_fit(fit: Scenario, ours: dict[str, Any], quick: bool) -> dict[str, Any]:
    """``--analyse``: the HPA and ours (as chosen) on the fitting period, then
    :func:`benchmarks._autoscaling_analysis.analyse` of their violation minutes."""
    from benchmarks._autoscaling_analysis import analyse, burst_predictability, session_features

    res = run_policies(
        fit, ["hpa", "predictive"], params={"predictive": predictive_params(ours, quick)}
    )
    end = fit.report_end or fit.trace.duration
    out = analyse(fit.trace.times, res, fit.report_start, end, fit.trace.epoch)
    service = fit.trace.service_times
    if service is not None:
        split = fit.trace.at(PREDICTABILITY_SPLIT)
        out["burst_predictability"] = burst_predictability(
            fit.trace.times, service, (fit.report_start, split), (split, end)
        )
        if fit.trace.users is not None:
            out["session_features"] = session_features(
                fit.trace.times, service, fit.trace.users, (fit.report_start, split), (split, end)
            )
    print(f"analysis (fitting period): {out}", flush=True)
    return out


def run_scenario(
    name: str, scenario: Scenario, params: dict[str, Any], jobs: int = 1
) -> dict[str, SimulationResult]:
    t = time.perf_counter()
    runs = [(p, params if p == "predictive" else None) for p in POLICIES]
    results = dict(zip(POLICIES, simulate_all(scenario, runs, jobs), strict=True))
    print(
        f"{name}: simulated {len(POLICIES)} policies in {time.perf_counter() - t:.0f} s", flush=True
    )
    return results


def shown_variants(
    scenario: Scenario,
    ours: dict[str, Any],
    quick: bool,
    variants: dict[str, dict[str, Any]] = BURST_VARIANTS,
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """Ours with each of ``variants`` added, on the report period (shown only)."""
    rows = []
    runs: list[tuple[str, dict[str, Any] | None]] = [
        ("predictive", predictive_params({**ours, **extra}, quick)) for extra in variants.values()
    ]
    done = simulate_all(scenario, runs, jobs)
    for (label, extra), res in zip(variants.items(), done, strict=True):
        sm = res.summary(scenario.report_start, scenario.report_end)
        rows.append({"variant": f"ours + {label}", **extra, **sm})
        print(
            f"variant {label}: {sm['replica_hours']} replica-h, "
            f"{sm['violation_minutes']} violation-min",
            flush=True,
        )
    return rows


def judge(rows: dict[str, dict[str, Any]]) -> tuple[dict[str, float], dict[str, bool], str]:
    peers = [rows[p] for p in PEERS]
    best = min(peers, key=lambda r: (r["violation_minutes"], r["replica_hours"]))
    ours, oracle = rows["predictive"], rows["oracle"]
    v_ratio = ours["violation_minutes"] / max(1, best["violation_minutes"])
    h_ratio = ours["replica_hours"] / best["replica_hours"]
    o_ratio = ours["replica_hours"] / oracle["replica_hours"]
    ratios = {
        "violation_minutes_vs_best_peer": round(v_ratio, 3),
        "replica_hours_vs_best_peer": round(h_ratio, 3),
        "replica_hours_vs_oracle": round(o_ratio, 3),
    }
    meets = {
        "violations_half_of_best_peer_at_no_more_hours": (
            ours["violation_minutes"] <= 0.5 * best["violation_minutes"] and h_ratio <= 1.0
        ),
        "hours_within_1.15x_oracle": o_ratio <= 1.15,
    }
    return ratios, meets, str(best["policy"])
