"""Autoscaling benchmark: our predictive policy against Kubernetes HPA, Knative KPA, Ray Serve's
default policy and an oracle, on real traces replayed in virtual time (``prsm.performance.sim``).

Main scenario (BENCHMARKS.md, row ``autoscaling``): ``alibaba_genai_lora_requests.csv``;
parameters are fitted and chosen on the first 14 days (to 2024-11-29 00:00) and figures
reported on the rest (≈ 9.7 days); each request's service time from the trace; one request at
a time per replica; start-up 120 s; SLO: queueing delay ≤ 30 s; 1–20 replicas; a violation
minute is a minute in which any arriving request waits longer than the SLO. Also the Twitter
trace (rate ×1/60, service 2 s mean, log-normal cv 1, one at a time, start-up 60 s, SLO 5 s;
fit 14 days, report the rest) and the Azure LLM 2023 conversation trace (one hour: a burst
test; service from tokens, 8 at a time per replica, start-up 60 s, SLO 2 s).

Goal, main scenario: violation minutes ≤ 50 % of the best of HPA/KPA/Ray Serve at no more
replica-hours than that peer, and replica-hours ≤ 1.15 × the oracle's.

    python -m benchmarks.autoscaling                 # all three traces, tuned parameters
    python -m benchmarks.autoscaling --tune          # re-choose ours on the fitting period
    python -m benchmarks.autoscaling --tune --jobs 4  # the same, simulations in 4 processes
    python -m benchmarks.autoscaling --quick --plot  # CI smoke run (short slices)
    python -m benchmarks.autoscaling --tune --frontier --plot  # + the report-period curves
    python -m benchmarks.autoscaling --only alibaba --analyse  # where violations come from
    python -m benchmarks.autoscaling --sessions      # user sessions as the arrival model
    python -m benchmarks.autoscaling --quantiles     # the burst table vs scikit-learn's
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks._autoscaling_plots import plot_frontier, plot_report_frontier
from benchmarks._harness import Report, parser
from prsm.performance.sim import (
    Scenario,
    ServiceModel,
    SimulationResult,
    SimulationSettings,
    TokenModel,
    read_alibaba_lora,
    read_azure_llm,
    read_counts_per_minute,
    run_policies,
)

TRACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces"
GOAL = (
    "main scenario: SLO-violation minutes <= 50% of the best of HPA/KPA/Ray Serve at <= that "
    "peer's replica-hours, and replica-hours <= 1.15x the oracle's"
)
PEERS = ("hpa", "kpa", "ray")
POLICIES = (*PEERS, "predictive", "oracle")
FIT_END = "2024-11-29 00:00"
#: ``--analyse`` fits its burst model on the fitting period before this, tests it after
PREDICTABILITY_SPLIT = "2024-11-26 00:00"
#: where the tuning simulation reports from (the trace's first days carry almost no load)
TUNE_FROM = "2024-11-19 00:00"

#: ours per trace, chosen by ``--tune`` on each trace's fitting period (the JSON's ``tuning``
#: has the grid); the Azure hour has no fitting period and runs the library's defaults. On
#: Alibaba the requests name their users, so ours holds a floor for open sessions
#: (``session_wait_probability``; Twitter and Azure name no users)
TUNED: dict[str, dict[str, Any]] = {
    "alibaba": {
        "interval": 10.0,
        "wait_probability": 0.9,
        "scale_down_window": 0.0,
        "session_wait_probability": 0.045,
        "session_new_window": 900.0,
    },
    "twitter": {"wait_probability": 0.2, "scale_down_window": 180.0},
    "azure": {},
}
#: a grid point without the burst quantile (``burst.span``: the burst points' span, 120 s);
#: new sessions counted at their rate over the tracker's hour unless a point says otherwise;
#: a decision every 15 s (the library's default) unless a point says otherwise
NO_BURST: dict[str, Any] = {
    "interval": 15.0,
    "scale_down_window": 60.0,
    "burst_quantile": None,
    "burst_hold_only": False,
    "burst.span": 120.0,
    "session_new_window": None,
}
#: the tuning grid per trace, fixed before any run on the report period. The rule (also
#: fixed): on the fitting period, the fewest violation minutes among the points that use no
#: more replica-hours than the best peer there and ≤ 1.15× the oracle (see :func:`tune`)
GRIDS: dict[str, list[dict[str, Any]]] = {
    "alibaba": [
        *(
            {**NO_BURST, "wait_probability": w, "session_wait_probability": p}
            for w in (0.7, 0.9)
            for p in (0.04, 0.05, 0.055, 0.06)
        ),
        *(
            {**NO_BURST, **burst, "wait_probability": 0.9, "session_wait_probability": p}
            for burst in (
                {"burst_quantile": 0.95},
                {"burst_quantile": 0.9, "burst_hold_only": True},
            )
            for p in (0.05, 0.055, 0.06)
        ),
        # added 2026-12-05 (second stop), fixed before any report-period run: no scale-down
        # stabilisation (the session floor's hold is what keeps replicas), new sessions at
        # the last hour's or the last 15 minutes' rate
        *(
            {
                **NO_BURST,
                "scale_down_window": 0.0,
                "wait_probability": 0.9,
                "session_wait_probability": p,
                "session_new_window": nw,
            }
            for nw in (None, 900.0)
            for p in (0.04, 0.045, 0.05)
        ),
        # added 2026-12-05 (third stop), fixed before any report-period run: a decision every
        # 5 or 10 s instead of 15 (a burst's queue is seen and replicas asked for up to 10 s
        # sooner; a quarter of the fitting period's late requests waited 35 s or less)
        *(
            {
                **NO_BURST,
                "interval": iv,
                "scale_down_window": 0.0,
                "wait_probability": 0.9,
                "session_wait_probability": p,
                "session_new_window": 900.0,
            }
            for iv in (5.0, 10.0)
            for p in (0.045, 0.0475, 0.05)
        ),
    ],
    "twitter": [
        {"wait_probability": w, "scale_down_window": d}
        for w in (0.2, 0.3, 0.5)
        for d in (60.0, 120.0, 180.0, 300.0)
    ],
}
#: the burst quantile's two grid settings (the sizing floor and the hold), run beside ours on
#: every scenario's report period as ours + that setting — shown (JSON ``burst_variants``),
#: never used to choose; on Twitter and Azure they are held-out workloads (the settings were
#: fixed on Alibaba's grid)
BURST_VARIANTS: dict[str, dict[str, Any]] = {
    "burst q0.95": {"burst_quantile": 0.95, "burst.span": 120.0},
    "burst q0.9 hold": {"burst_quantile": 0.9, "burst.span": 120.0, "burst_hold_only": True},
}
#: an experiment (2026-12-05), shown on the main scenario's report period, never used to
#: choose: the grid above extended with ``reactive_queue_share`` 0.5 and 0 (queued requests
#: get half or none of their reactive slots; ``session_wait_probability`` 0.035–0.045), under
#: the same rule, chose share 0 at 0.04 on the fitting period (420.0 replica-h / 86 min
#: against 421.0 / 93 for ours then: scale-down window 60 s, session ε 0.055); ours + that
#: setting is run beside ours (JSON ``queue_share_variants``)
QUEUE_SHARE_VARIANTS: dict[str, dict[str, Any]] = {
    "queue share 0, sessions 0.04": {
        "reactive_queue_share": 0.0,
        "session_wait_probability": 0.04,
    },
}
#: the HPA's one knob that trades replica-hours for violations: its scale-down
#: stabilisation window (seconds; 300 is the documented default), for ``--frontier``
HPA_WINDOWS = (0.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0)


def alibaba(traces: Path, quick: bool) -> tuple[Scenario, Scenario]:
    """The main scenario and its fitting-period twin (for tuning)."""
    trace = read_alibaba_lora(traces / "alibaba_genai_lora_requests.csv")
    split = trace.at(FIT_END)
    if quick:
        settings = SimulationSettings(
            startup_time=120.0, slo=30.0, start=split - 6 * 3600, end=split + 12 * 3600
        )
        main = Scenario(trace, settings, report_start=split, report_end=split + 12 * 3600)
    else:
        settings = SimulationSettings(startup_time=120.0, slo=30.0, start=split - 86400)
        main = Scenario(trace, settings, report_start=split)
    tune_from = trace.at(TUNE_FROM)
    fit = Scenario(
        trace,
        SimulationSettings(startup_time=120.0, slo=30.0, start=tune_from - 86400, end=split),
        report_start=tune_from,
        report_end=split,
    )
    return main, fit


def twitter(traces: Path, quick: bool) -> tuple[Scenario, Scenario]:
    """The Twitter scenario and its fitting-period twin (the fitting period's last two days)."""
    service = ServiceModel(mean=2.0, cv=1.0, seed=7)
    trace = read_counts_per_minute(
        traces / "twitter_requests_per_minute.csv", scale=1 / 60, service=service
    )
    split = 14 * 86400.0
    if quick:
        s = SimulationSettings(startup_time=60.0, slo=5.0, start=split - 1800, end=split + 3600)
        main = Scenario(trace, s, report_start=split, report_end=split + 3600)
    else:
        s = SimulationSettings(startup_time=60.0, slo=5.0, start=split - 3600)
        main = Scenario(trace, s, report_start=split)
    tune_from = split - 2 * 86400.0
    fit = Scenario(
        trace,
        SimulationSettings(startup_time=60.0, slo=5.0, start=tune_from - 3600, end=split),
        report_start=tune_from,
        report_end=split,
    )
    return main, fit


def azure(traces: Path, quick: bool) -> Scenario:
    trace = read_azure_llm(
        traces / "azure_llm_2023_conv.csv",
        TokenModel(prefill_tokens_per_s=5000.0, decode_tokens_per_s=50.0, overhead=0.05),
    )
    end = 900.0 if quick else None
    s = SimulationSettings(concurrency=8, startup_time=60.0, slo=2.0, end=end)
    return Scenario(trace, s, report_end=end)


def predictive_params(tuned: dict[str, Any], quick: bool) -> dict[str, Any]:
    params = dict(tuned)
    if quick:  # fewer refits: the quick run checks that it runs, not its figures
        params["predictor.refit_interval"] = 86400.0
    return params


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
    from benchmarks._autoscaling_analysis import analyse, burst_predictability

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


def plot_all(
    report: Report, png: Path, results: dict[str, tuple[Scenario, dict[str, SimulationResult]]]
) -> None:
    from prsm.performance.sim import plot_comparison

    for name, (scenario, res) in results.items():
        out = png if name == "alibaba" else png.with_name(f"{png.stem}-{name}.png")
        plot_comparison(
            res,
            out,
            start=scenario.report_start,
            end=scenario.report_end,
            title=f"{name}: {scenario.trace.description}",
        )
        if out != png:
            print(f"wrote {out}")
    for name, rows in (report.extra.get("tuning") or {}).items():
        out = png.with_name(f"{png.stem}-{name}-frontier.png")
        plot_frontier(rows, out, name)
        print(f"wrote {out}")
    for name, rows in (report.extra.get("report_frontier") or {}).items():
        out = png.with_name(f"{png.stem}-{name}-report-frontier.png")
        plot_report_frontier(rows, out, name)
        print(f"wrote {out}")


def sessions(args: argparse.Namespace) -> int:
    """``--sessions``: see :mod:`benchmarks._autoscaling_sessions`."""
    from benchmarks._autoscaling_sessions import session_study

    report = Report("autoscaling-sessions", GOAL)
    main_, fit = alibaba(args.traces, False)
    study = session_study(main_, fit, TUNED["alibaba"])
    for period in ("fitting_period", "report_period"):
        for row in study[period]:
            report.add(period=period.split("_")[0], **row)
    rows = {r["policy"]: r for r in study["report_period"]}
    hpa, ours = rows["hpa"], rows["ours"]
    report.ratio_vs_peer = {
        "violation_minutes": round(ours["violation_minutes"] / hpa["violation_minutes"], 3),
        "replica_hours": round(ours["replica_hours"] / hpa["replica_hours"], 3),
    }
    report.meets_goal = {
        "violations_half_of_hpa_at_its_hours": ours["violation_minutes"]
        <= 0.5 * hpa["violation_minutes"]
        and ours["replica_hours"] <= hpa["replica_hours"]
    }
    report.extra["sessions"] = study
    report.finish(args)
    return 0


def quantiles(args: argparse.Namespace) -> int:
    """``--quantiles``: see :mod:`benchmarks._autoscaling_quantiles`."""
    from benchmarks._autoscaling_quantiles import quantile_check

    report = Report(
        "autoscaling-quantiles",
        "the burst table's pinball loss at or below scikit-learn's quantile regressors' on the "
        "fitting period's held-out days, at each quantile",
    )
    trace = read_alibaba_lora(args.traces / "alibaba_genai_lora_requests.csv")
    rows = quantile_check(trace.times, trace.at(PREDICTABILITY_SPLIT), trace.at(FIT_END))
    for row in rows:
        report.add(**row)
    ours = {r["quantile"]: r["pinball"] for r in rows if r["method"].endswith("(ours)")}
    best_peer = {
        q: min(r["pinball"] for r in rows if r["quantile"] == q and "sklearn" in r["method"])
        for q in ours
    }
    report.ratio_vs_peer = {f"pinball_q{q}": round(ours[q] / best_peer[q], 3) for q in ours}
    report.meets_goal = {f"q{q}": ours[q] <= best_peer[q] for q in ours}
    report.finish(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = parser("autoscaling", __doc__ or "")
    p.add_argument("--traces", type=Path, default=TRACES, help="folder of the shared traces")
    p.add_argument(
        "--tune", action="store_true", help="re-choose our parameters on each fitting period"
    )
    p.add_argument(
        "--frontier",
        action="store_true",
        help="also run the main scenario's report period at every grid point of ours and "
        "every HPA stabilisation window (shown, not used to choose)",
    )
    p.add_argument(
        "--analyse",
        action="store_true",
        help="where the main scenario's violation minutes come from, on its fitting period "
        "(HPA and ours): periodicity within the hour, episodes and what preceded them",
    )
    p.add_argument(
        "--sessions",
        action="store_true",
        help="only the main scenario's session study (benchmarks/_autoscaling_sessions.py): "
        "results/autoscaling-sessions.json",
    )
    p.add_argument(
        "--quantiles",
        action="store_true",
        help="only the burst table against scikit-learn's quantile regressors "
        "(benchmarks/_autoscaling_quantiles.py): results/autoscaling-quantiles.json",
    )
    p.add_argument("--only", choices=("alibaba", "twitter", "azure"), action="append", default=None)
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="simulations run in this many processes (virtual time: same figures)",
    )
    args: argparse.Namespace = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.sessions:
        return sessions(args)
    if args.quantiles:
        return quantiles(args)
    report = Report("autoscaling", GOAL)
    ali, ali_fit = alibaba(args.traces, args.quick)
    tw, tw_fit = twitter(args.traces, args.quick)
    scenarios = {"alibaba": ali, "twitter": tw, "azure": azure(args.traces, args.quick)}
    fits = {"alibaba": ali_fit, "twitter": tw_fit}
    wanted = args.only or list(scenarios)
    tuned = {k: dict(v) for k, v in TUNED.items()}
    if args.tune:
        tuning = {}
        for name in wanted:
            if name in fits:
                tuned[name], tuning[name] = tune(fits[name], GRIDS[name], args.quick, args.jobs)
                report.notes.append(f"{name}: chosen on its fitting period: {tuned[name]}")
        report.extra["tuning"] = tuning
    report.extra["ours"] = {name: tuned[name] for name in wanted}
    all_results = {}
    parameters: dict[str, Any] = {}
    for name in wanted:
        scenario = scenarios[name]
        results = run_scenario(
            name, scenario, predictive_params(tuned[name], args.quick), args.jobs
        )
        all_results[name] = (scenario, results)
        rows = {}
        for policy, res in results.items():
            row = res.summary(scenario.report_start, scenario.report_end)
            rows[policy] = row
            report.add(scenario=name, **row)
        parameters[name] = {
            "trace": scenario.trace.source,
            "description": scenario.trace.description,
            "settings": {
                k: getattr(scenario.settings, k) for k in scenario.settings.__dataclass_fields__
            },
            "report_start": scenario.report_start,
            "report_end": scenario.report_end,
            "policies": {n: r.parameters for n, r in results.items()},
        }
        if name == "alibaba":
            ratios, meets, best = judge(rows)
            report.ratio_vs_peer = ratios
            report.meets_goal = meets
            report.notes.append(
                f"best peer on the main scenario (fewest violation minutes): {best}"
            )
    report.extra["scenarios"] = parameters
    report.extra["burst_variants"] = {
        name: shown_variants(scenarios[name], tuned[name], args.quick, jobs=args.jobs)
        for name in wanted
    }
    if "alibaba" in wanted:
        report.extra["queue_share_variants"] = shown_variants(
            scenarios["alibaba"], tuned["alibaba"], args.quick, QUEUE_SHARE_VARIANTS, args.jobs
        )
    if args.analyse and "alibaba" in wanted:
        report.extra["analysis"] = analyse_fit(ali_fit, tuned["alibaba"], args.quick)
    if args.frontier and "alibaba" in wanted:
        report.extra["report_frontier"] = {
            "alibaba": report_frontier(scenarios["alibaba"], GRIDS["alibaba"], args.quick)
        }
    report.notes.append(
        "peers as documented: HPA (15 s sync, tolerance 0.1, up max(+4, +100%)/15 s, down "
        "stabilisation 300 s; metric in-flight+queued per pod, target = the concurrency per "
        "replica), KPA (2 s tick, 60 s stable / 6 s panic window, target 70% of the container "
        "concurrency, panic at 200%, at most halving), Ray Serve (target_ongoing_requests = the "
        "concurrency per replica, upscale 30 s, downscale 600 s, 30 s look-back; control loop "
        "run every 1 s of virtual time); oracle: peak demand over start-up + 60 s look-ahead"
    )
    report.finish(args, plot=lambda r, png: plot_all(r, png, all_results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
