"""Where the autoscaling benchmark's SLO-violation minutes come from (``--analyse``).

Run on the fitting period only: is the traffic periodic within the hour (cron-like jobs that a
time-of-hour forecast could prepare for), how are the violation minutes grouped into episodes,
what came before each episode (a quiet night on the one-replica floor, or a busy hour), and how
well a burst can be told apart from a calm minute beforehand.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from prsm.performance.sim import SimulationResult

#: a burst starts at an arrival after this many quiet seconds ...
QUIET = 120.0
#: ... that at least this many more arrivals follow within ``QUIET`` seconds
FOLLOWERS = 2


def periodicity(
    times: np.ndarray[Any, Any], start: float, end: float, epoch: float = 0.0
) -> dict[str, Any]:
    """Arrivals and burst starts by minute of the hour (``times`` are seconds from ``epoch``,
    a Unix time) and a chi-square test of a flat hour for each."""
    t = times[(times >= start) & (times < end)]
    minute = (((t + epoch) // 60) % 60).astype(np.int64)
    per_minute = np.bincount(minute, minlength=60)
    gaps = np.diff(t, prepend=-np.inf)
    followers = np.searchsorted(t, t + QUIET) - np.arange(len(t)) - 1
    starts = (gaps >= QUIET) & (followers >= FOLLOWERS)
    per_5 = np.bincount(minute[starts] // 5, minlength=12)
    return {
        "arrivals": len(t),
        "arrivals_by_minute_of_hour_min_max_vs_mean": [
            round(float(per_minute.min() / per_minute.mean()), 3),
            round(float(per_minute.max() / per_minute.mean()), 3),
        ],
        "arrivals_flat_hour_chi2_p": float(stats.chisquare(per_minute).pvalue),
        "bursts": int(starts.sum()),
        "bursts_by_5_minutes_of_hour": per_5.tolist(),
        "bursts_flat_hour_chi2_p": round(float(stats.chisquare(per_5).pvalue), 4),
    }


def episodes(result: SimulationResult, start: float, end: float, gap: int = 3) -> dict[str, Any]:
    """Violation minutes grouped into episodes (no more than ``gap`` minutes apart), with
    what the policy had ready and what arrived before each one began."""
    per = result.minutes(start, end)
    bad = np.flatnonzero(per["violations"] > 0)
    if len(bad) == 0:
        return {"violation_minutes": 0, "episodes": 0}
    groups = np.split(bad, np.flatnonzero(np.diff(bad) > gap) + 1)
    first = np.array([g[0] for g in groups])
    arrivals = np.concatenate(([0.0], np.cumsum(per["arrivals"])))

    def before(k: int) -> np.ndarray[Any, Any]:
        return np.asarray(arrivals[first] - arrivals[np.maximum(first - k, 0)])

    sizes = np.bincount([len(g) for g in groups])
    return {
        "violation_minutes": len(bad),
        "episodes": len(groups),
        "episodes_by_violation_minutes": {str(k): int(v) for k, v in enumerate(sizes) if v},
        "ready_at_violation_minutes_median": float(np.median(per["ready"][bad])),
        "share_of_violation_minutes_on_one_ready_replica": round(
            float((per["ready"][bad] < 1.05).mean()), 3
        ),
        "arrivals_in_10_min_before_median": float(np.median(before(10))),
        "arrivals_in_60_min_before_median": float(np.median(before(60))),
        "share_after_a_quiet_10_min": round(float((before(10) == 0).mean()), 3),
        "share_after_a_quiet_hour": round(float((before(60) == 0).mean()), 3),
        "arrivals_in_first_3_min_median": float(
            np.median([per["arrivals"][g[0] : g[0] + 3].sum() for g in groups])
        ),
    }


def analyse(
    times: np.ndarray[Any, Any],
    results: dict[str, SimulationResult],
    start: float,
    end: float,
    epoch: float = 0.0,
) -> dict[str, Any]:
    """:func:`periodicity` of the arrivals and :func:`episodes` of each policy's run."""
    return {
        "window": [start, end],
        "periodicity": periodicity(times, start, end, epoch),
        "episodes": {name: episodes(r, start, end) for name, r in results.items()},
    }
