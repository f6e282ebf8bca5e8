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


def burst_predictability(
    times: np.ndarray[Any, Any],
    service: np.ndarray[Any, Any],
    fit: tuple[float, float],
    test: tuple[float, float],
    startup: float = 120.0,
) -> dict[str, Any]:
    """How well a burst can be told a start-up ahead: a logistic model (scikit-learn, the
    ``bench`` extra) of "the requests in service in ``[t + startup, t + startup + 60]`` exceed
    their peak over ``[t - 300, t]``" (infinitely many servers, 10 s grid) from the hour of the
    day (two harmonics), the log arrivals of the last 1/5/15/60 minutes and the requests in
    service at ``t``, one sample a minute; fitted on ``fit``, its ROC AUC on ``test``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    grid = 10.0
    n = int(max(fit[1], test[1]) // grid) + int(startup // grid) + 8
    change = np.zeros(n + 2)
    np.add.at(change, np.minimum((times // grid).astype(np.int64), n + 1), 1.0)
    np.add.at(change, np.minimum(((times + service) // grid).astype(np.int64) + 1, n + 1), -1.0)
    busy = np.cumsum(change)[:n]
    slot = np.minimum((times // grid).astype(np.int64), n)
    arrived = np.concatenate(([0.0], np.cumsum(np.bincount(slot, minlength=n + 1))))
    ahead, span = int(startup // grid), 6

    def samples(a: float, b: float) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        idx = np.arange(int(a // 60) * 6 + 30, int(b // grid) - ahead - span, 6)
        past = np.array([busy[i - 30 : i + 1].max() for i in idx])
        future = np.array([busy[i + ahead : i + ahead + span].max() for i in idx])
        upto = arrived[idx + 1]
        counts = [upto - arrived[np.maximum(idx + 1 - 6 * m, 0)] for m in (1, 5, 15, 60)]
        day = 2 * np.pi * ((idx * grid) % 86400) / 86400
        hours = [np.sin(day), np.cos(day), np.sin(2 * day), np.cos(2 * day)]
        x = np.column_stack([*(np.log1p(c) for c in counts), busy[idx], *hours])
        return x, (future > past).astype(np.int64)

    x_fit, y_fit = samples(*fit)
    x_test, y_test = samples(*test)
    model = LogisticRegression(max_iter=3000).fit(x_fit, y_fit)
    return {
        "label": f"in service {startup:g}-{startup + 60:g} s ahead > the last 5 min's peak",
        "fit_window": list(fit),
        "test_window": list(test),
        "base_rate_test": round(float(y_test.mean()), 4),
        "roc_auc_test": round(float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])), 3),
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


def session_features(
    times: np.ndarray[Any, Any],
    service: np.ndarray[Any, Any],
    users: np.ndarray[Any, Any],
    fit: tuple[float, float],
    test: tuple[float, float],
    *,
    gap: float = 1800.0,
    window: tuple[float, float] = (90.0, 210.0),
    tau_step: float = 15.0,
    grid: float = 10.0,
) -> dict[str, Any]:
    """Would the session floor forecast better knowing more of each open session? Every
    ``grid`` seconds, for every user whose last request is under ``gap`` seconds old, the
    target is that user's arrivals in ``[t + window[0], t + window[1])`` (what the floor
    forecasts); a table of its mean per feature cell is fitted on ``fit`` and scored on
    ``test`` (mean squared error per session and of the sum over sessions at each ``t``).
    Features: the library's (the session's rank bucket and the quiet time since its last
    request, in ``tau_step`` steps); the same with whether that request is still in service
    and, if not, the time since it ended (service from the trace, waits taken as 0: users
    mostly send their next request after the last one's answer); the library's with the
    user's previous gap between requests (its cadence)."""
    edges = np.array([1, 2, 4, 10])
    cells: dict[str, list[np.ndarray[Any, Any]]] = {"rank+quiet": [], "+in service/ended": [],
                                                    "+previous gap": []}  # fmt: skip
    targets: list[np.ndarray[Any, Any]] = []
    at: list[np.ndarray[Any, Any]] = []
    grid_t = np.arange(fit[0], test[1] - window[1], grid)
    order = np.argsort(users, kind="stable")  # each user's requests, in time, users in order
    per_user = np.split(order, np.flatnonzero(np.diff(users[order])) + 1)
    for idx in per_user:
        ts, ex = times[idx], service[idx]
        last = np.searchsorted(ts, grid_t, side="right") - 1
        live = last >= 0
        t, i = grid_t[live], last[live]
        quiet = t - ts[i]
        keep = quiet < gap
        t, i, quiet = t[keep], i[keep], quiet[keep]
        if len(t) == 0:
            continue
        starts = np.flatnonzero(np.r_[True, np.diff(ts) >= gap])
        rank = i - starts[np.searchsorted(starts, i, side="right") - 1] + 1
        bucket = np.searchsorted(edges, rank, side="right") - 1
        steps = np.minimum(quiet // tau_step, gap // tau_step).astype(np.int64)
        ended = ts[i] + ex[i]
        since = np.where(ended > t, -1 - steps, np.minimum((t - ended) // tau_step, 999))
        prev = np.where(rank > 1, ts[i] - ts[np.maximum(i - 1, 0)], -1.0)
        cadence = np.searchsorted([0.0, 45.0, 90.0, 180.0], prev, side="right")
        cells["rank+quiet"].append(bucket * 10_000 + steps)
        cells["+in service/ended"].append(bucket * 10_000 + 5_000 + since.astype(np.int64))
        cells["+previous gap"].append((bucket * 10_000 + steps) * 10 + cadence)
        targets.append(
            np.searchsorted(ts, t + window[1], side="left")
            - np.searchsorted(ts, t + window[0], side="left")
        )
        at.append(t)
    # users' cadence: consecutive requests of a user under ``gap`` apart, both in the span
    gaps, prev_gaps, before_end, after_answer = [], [], [], []
    for every in per_user:
        idx = every[(times[every] >= fit[0]) & (times[every] < test[1])]
        ts, ex = times[idx], service[idx]
        g = np.diff(ts)
        ok = g < gap
        gaps.append(g[ok])
        before_end.append(g[ok] < ex[:-1][ok])
        after_answer.append((g - ex[:-1])[ok])
        both = ok[1:] & ok[:-1]
        prev_gaps.append(np.column_stack([g[:-1][both], g[1:][both]]))
    pairs = np.concatenate(prev_gaps)
    cadence = {
        "gaps": int(sum(len(g) for g in gaps)),
        "median_gap_s": float(np.median(np.concatenate(gaps))),
        "share_before_the_last_ended": round(float(np.mean(np.concatenate(before_end))), 4),
        "median_answer_to_next_s": float(np.median(np.concatenate(after_answer))),
        "log_gap_correlation": round(float(np.corrcoef(np.log1p(pairs.T))[0, 1]), 3),
    }
    y = np.concatenate(targets).astype(np.float64)
    when = np.concatenate(at)
    train, held = when < fit[1], when >= test[0]
    out: dict[str, Any] = {"window": list(window), "gap": gap, "sessions_x_times": len(y),
                           "cadence": cadence}  # fmt: skip
    for name, parts in cells.items():
        key = np.concatenate(parts)
        codes, inverse = np.unique(key, return_inverse=True)
        sums = np.bincount(inverse[train], weights=y[train], minlength=len(codes))
        counts = np.bincount(inverse[train], minlength=len(codes))
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), y[train].mean())
        pred = mean[inverse[held]]
        slots, back = np.unique(when[held], return_inverse=True)
        total = np.bincount(back, weights=y[held], minlength=len(slots))
        total_pred = np.bincount(back, weights=pred, minlength=len(slots))
        out[name] = {
            "mse_per_session": round(float(np.mean((y[held] - pred) ** 2)), 4),
            "mse_of_the_sum": round(float(np.mean((total - total_pred) ** 2)), 3),
        }
    return out
