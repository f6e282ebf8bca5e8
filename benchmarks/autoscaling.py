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
    python -m benchmarks.autoscaling --headroom --jobs 2  # the session forecast's error headroom
    python -m benchmarks.autoscaling --seasonal --jobs 2  # the seasonal burst floor
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks._autoscaling_plots import plot_frontier, plot_report_frontier
from benchmarks._autoscaling_runs import (
    analyse_fit,
    judge,
    report_frontier,
    run_scenario,
    shown_variants,
    tune,
)
from benchmarks._autoscaling_setup import (
    FIT_END,
    GOAL,
    GRIDS,
    PREDICTABILITY_SPLIT,
    QUEUE_SHARE_VARIANTS,
    TRACES,
    TUNED,
    alibaba,
    azure,
    predictive_params,
    twitter,
)
from benchmarks._harness import RESULTS, Report, parser
from prsm.performance.sim import Scenario, SimulationResult, read_alibaba_lora


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


def headroom(args: argparse.Namespace) -> int:
    """``--headroom``: see :mod:`benchmarks._autoscaling_headroom`."""
    from benchmarks._autoscaling_headroom import headroom_study

    report = Report("autoscaling-headroom", GOAL)
    main_, fit = alibaba(args.traces, False)
    study = headroom_study(main_, fit, TUNED["alibaba"], args.jobs)
    for row in study["fitting_period"]:
        report.add(period="fitting", **row)
    for row in study.get("report_period", []):
        report.add(period="report", **row)
    report.notes.append(f"chosen on the fitting period: {study['chosen']}")
    report.extra["headroom"] = study
    report.finish(args)
    return 0


def seasonal(args: argparse.Namespace) -> int:
    """``--seasonal``: see :mod:`benchmarks._autoscaling_seasonal`."""
    from benchmarks._autoscaling_seasonal import seasonal_study

    report = Report("autoscaling-seasonal", GOAL)
    main_, fit = alibaba(args.traces, False)
    known = _known_alibaba(RESULTS / "autoscaling.json") if args.known else None
    study = seasonal_study(main_, fit, TUNED["alibaba"], args.jobs, known)
    for row in study["fitting_period"]:
        report.add(period="fitting", **row)
    for row in study.get("report_period", []):
        report.add(period="report", **row)
    report.notes.append(f"chosen on the fitting period: {study['chosen']}")
    report.extra["seasonal"] = study
    report.finish(args)
    return 0


def _known_alibaba(path: Path) -> dict[str, dict[str, Any]]:
    """The HPA's and ours' figures on the main scenario's fitting period (the ``tuning``
    rows) and the HPA's on its report period, from a full run's JSON; a ``ValueError`` when
    it holds none for ours as tuned now."""
    import json

    data = json.loads(path.read_text())
    keys = ("replica_hours", "violation_minutes")
    rows = data["tuning"]["alibaba"]
    tuned = TUNED["alibaba"]
    hpa = next(r for r in rows if r.get("policy") == "hpa")
    ours = [r for r in rows if all(r.get(k) == v for k, v in tuned.items())]
    report = [r for r in data["rows"] if r["scenario"] == "alibaba" and r["policy"] == "hpa"]
    ran = data["ours"]["alibaba"]
    if not ours or not report or any(ran.get(k) != v for k, v in tuned.items()):
        raise ValueError(f"{path} holds no fitting-period row for ours as tuned: {tuned}")
    return {
        "hpa": {k: hpa[k] for k in keys},
        "ours": {k: ours[0][k] for k in keys},
        "hpa_report": {k: report[0][k] for k in keys},
    }


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
    p.add_argument(
        "--headroom",
        action="store_true",
        help="only the main scenario's error-headroom study (benchmarks/_autoscaling_headroom.py):"
        " results/autoscaling-headroom.json",
    )
    p.add_argument(
        "--seasonal",
        action="store_true",
        help="only the main scenario's seasonal burst floor study "
        "(benchmarks/_autoscaling_seasonal.py): results/autoscaling-seasonal.json",
    )
    p.add_argument(
        "--known",
        action="store_true",
        help="with --seasonal: take the HPA's and ours' figures from results/autoscaling.json "
        "instead of simulating them again (same scenario and code)",
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
    if args.headroom:
        return headroom(args)
    if args.seasonal:
        return seasonal(args)
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
