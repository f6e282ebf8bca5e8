"""``python -m benchmarks.autoscaling --seasonal``: the seasonal burst floor.

Of ours' violation minutes on the main scenario's fitting period, most fall in bursts that ramp
faster than the 120 s start-up, in the busy UTC hours, while a replica asked for is still
starting (the fourth stop's diagnosis). :class:`~prsm.performance.scaling.PredictivePolicy`'s
``seasonal_share`` provisions, a start-up time ahead, for a share of the largest burst this
time of day brought on the last days (:mod:`prsm.performance.scaling._seasonal`). Ours gives
its session floor's Erlang-C probability (``session_wait_probability``) some slack to pay for
it. This study runs the HPA, ours (as tuned) and ours with each point of
:data:`SEASONAL_GRID` on the fitting period and applies the benchmark's rule there (the
fewest violation minutes among the points within the HPA's replica-hours, the best peer on
the fitting period). The point chosen, if it is not ours, is then run once on the report
period: reported, never used to choose.

On a loaded machine (one process, a fifth of a core) the HPA's and ours' figures can be taken
from ``results/autoscaling.json`` (``known``: its fitting-period ``tuning`` rows and its
report-period rows, produced by the same scenarios and the same code, with the floor off)
instead of simulated again; the JSON says which.
"""

from __future__ import annotations

from typing import Any

from benchmarks._autoscaling_runs import simulate_all
from prsm.performance.sim import Scenario

#: fixed 2026-12-05 (fifth stop, 14:33 UTC) before any simulation with the floor: the share
#: of the burst, the rank of the day's peak among the last 7 days (1: the largest, 3: the
#: third), with the session floor's probability loosened from ours' 0.045 to 0.06 to pay
#: for it; 2-minute bursts within ±15 minutes of the time a replica asked for now is
#: ready, sized as arriving over 2 minutes. (An 18-point grid, then an 8-point one with
#: probability 0.045 too, were started at 14:33 and stopped unseen: the machine was loaded
#: and one process gets a fifth of a core.)
SEASONAL_GRID: list[dict[str, Any]] = [
    {
        "seasonal_share": share,
        "seasonal.rank": rank,
        "session_wait_probability": 0.06,
    }
    for rank in (1, 3)
    for share in (0.5, 1.0)
]
#: added at 14:49, after the four points above were seen on the fitting period (each more
#: hours for its minutes than loosening the session floor alone) and before any
#: report-period run: the floor as a hold only (``seasonal_hold_only``: replicas that run
#: are kept in the hours whose history shows bursts, none asked for), cheaper, so at ours'
#: session ε 0.045 or 0.05, the largest day's peak, share 1 or 1.5
SEASONAL_GRID += [
    {
        "seasonal_share": share,
        "seasonal.rank": 1,
        "seasonal_hold_only": True,
        "session_wait_probability": eps,
    }
    for share in (1.0, 1.5)
    for eps in (0.045, 0.05)
]


def _figures(res: Any, sc: Scenario) -> dict[str, Any]:
    sm = res.summary(sc.report_start, sc.report_end)
    return {k: sm[k] for k in ("replica_hours", "violation_minutes", "slo_breaches")}


def seasonal_study(
    main: Scenario,
    fit: Scenario,
    ours: dict[str, Any],
    jobs: int = 1,
    known: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The HPA, ours and ours + each grid point on the fitting period; the rule's choice;
    the HPA and the choice on the report period when it is not ours. ``known``: figures not
    simulated again — ``hpa`` and ``ours`` on the fitting period, ``hpa_report`` on the
    report period."""
    known = known or {}
    runs: list[tuple[str, dict[str, Any] | None]] = [
        *([] if "hpa" in known else [("hpa", None)]),
        *([] if "ours" in known else [("predictive", dict(ours))]),
        *(("predictive", {**ours, **p}) for p in SEASONAL_GRID),
    ]
    done = iter(simulate_all(fit, runs, jobs))
    hpa = {"policy": "hpa", **(known.get("hpa") or _figures(next(done), fit))}
    tried = [{"policy": "ours", **(known.get("ours") or _figures(next(done), fit))}]
    tried += [
        {"policy": "ours + seasonal", **p, **_figures(next(done), fit)} for p in SEASONAL_GRID
    ]
    for row in (hpa, *tried):
        print(f"seasonal, fitting period: {row}", flush=True)
    within = [t for t in tried if t["replica_hours"] <= hpa["replica_hours"]]
    choice = min(within or tried, key=lambda t: (t["violation_minutes"], t["replica_hours"]))
    extra = {k: choice[k] for k in choice if k.startswith(("seasonal", "session_"))}
    out: dict[str, Any] = {
        "ours": ours,
        "rule": "fewest violation minutes within the HPA's replica-hours, fitting period",
        "fitting_period": [hpa, *tried],
        "chosen": choice["policy"],
        "chosen_settings": extra,
        "known": {k: "results/autoscaling.json (same scenario and code)" for k in known},
    }
    if choice["policy"] != "ours":
        runs = [*([] if "hpa_report" in known else [("hpa", None)])]
        runs.append(("predictive", {**ours, **extra}))
        res = iter(simulate_all(main, runs, jobs))
        peer = known.get("hpa_report") or _figures(next(res), main)
        out["report_period"] = [
            {"policy": "hpa", **peer},
            {"policy": choice["policy"], **extra, **_figures(next(res), main)},
        ]
        for row in out["report_period"]:
            print(f"seasonal, report period: {row}", flush=True)
    return out
