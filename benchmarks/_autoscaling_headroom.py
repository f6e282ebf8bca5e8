"""``python -m benchmarks.autoscaling --headroom``: the session forecast's error headroom.

:class:`~prsm.performance.scaling.PredictivePolicy` can add to its session floor a headroom
sized from its own recent forecast errors (``session_error_quantile`` over the last
``session_error_span`` seconds, :mod:`prsm.performance.scaling._headroom`): instead of a
fixed margin, one that grows in the hours whose bursts the sessions do not foresee. This
study runs ours (as tuned) and ours with each point of :data:`HEADROOM_GRID` on the main
scenario's fitting period and applies the benchmark's rule there (the fewest violation
minutes among the points within the best peer's replica-hours; the best peer on the fitting
period is the HPA, see the main JSON's ``tuning``). The point chosen, if it is not ours, is
then run once on the report period: reported, never used to choose.
"""

from __future__ import annotations

from typing import Any

from benchmarks._autoscaling_runs import simulate_all
from prsm.performance.sim import Scenario

#: fixed 2026-12-05 (fourth stop) before any report-period run of the headroom: the error
#: quantile, with a looser Erlang-C probability to pay for it, over the last 6 h, 1 h, 30 or
#: 15 minutes (every point tried, in the order tried, all on the fitting period only)
HEADROOM_GRID: list[dict[str, Any]] = [
    {"session_error_quantile": q, "session_wait_probability": p, "session_error_span": span}
    for q, p, span in (
        (0.5, 0.05, 21600.0),
        (0.75, 0.05, 21600.0),
        (0.9, 0.05, 21600.0),
        (0.75, 0.055, 21600.0),
        (0.9, 0.06, 21600.0),
        (0.6, 0.05, 21600.0),
        (0.65, 0.06, 21600.0),
        (0.7, 0.07, 21600.0),
        (0.75, 0.09, 21600.0),
        (0.7, 0.05, 3600.0),
        (0.75, 0.07, 3600.0),
        (0.6, 0.06, 3600.0),
        (0.65, 0.08, 3600.0),
        (0.7, 0.1, 3600.0),
        (0.7, 0.08, 1800.0),
        (0.75, 0.12, 1800.0),
        (0.75, 0.1, 900.0),
        # added after the 17 above (12:16), still before any report-period run of the
        # headroom: lower quantiles / looser probabilities over 1 h and 30 min, toward the
        # HPA's replica-hours
        (0.55, 0.06, 3600.0),
        (0.55, 0.08, 3600.0),
        (0.6, 0.1, 3600.0),
        (0.65, 0.15, 3600.0),
        (0.7, 0.2, 3600.0),
        (0.6, 0.08, 1800.0),
    )
]


def _figures(res: Any, sc: Scenario) -> dict[str, Any]:
    sm = res.summary(sc.report_start, sc.report_end)
    return {k: sm[k] for k in ("replica_hours", "violation_minutes", "slo_breaches")}


def headroom_study(
    main: Scenario, fit: Scenario, ours: dict[str, Any], jobs: int = 1
) -> dict[str, Any]:
    """The HPA, ours and ours + each grid point on the fitting period; the rule's choice;
    the choice on the report period when it is not ours."""
    points = [{}, *HEADROOM_GRID]
    runs: list[tuple[str, dict[str, Any] | None]] = [("hpa", None)]
    runs += [("predictive", {**ours, **p}) for p in points]
    done = simulate_all(fit, runs, jobs)
    hpa = {"policy": "hpa", **_figures(done[0], fit)}
    tried = [
        {"policy": "ours + headroom" if p else "ours", **p, **_figures(r, fit)}
        for p, r in zip(points, done[1:], strict=True)
    ]
    for row in (hpa, *tried):
        print(f"headroom, fitting period: {row}", flush=True)
    within = [t for t in tried if t["replica_hours"] <= hpa["replica_hours"]]
    choice = min(within or tried, key=lambda t: (t["violation_minutes"], t["replica_hours"]))
    out: dict[str, Any] = {
        "ours": ours,
        "rule": "fewest violation minutes within the HPA's replica-hours, fitting period",
        "fitting_period": [hpa, *tried],
        "chosen": choice["policy"],
    }
    extra = {k: choice[k] for k in choice if k.startswith("session_")}
    out["chosen_settings"] = extra
    if choice["policy"] != "ours":
        (res,) = simulate_all(main, [("predictive", {**ours, **extra})], 1)
        out["report_period"] = [{"policy": choice["policy"], **extra, **_figures(res, main)}]
        print(f"headroom, report period: {out['report_period'][0]}", flush=True)
    return out
