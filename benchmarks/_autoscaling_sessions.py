"""``python -m benchmarks.autoscaling --sessions``: what users' sessions give, and a bound.

The Alibaba trace names each request's user (``groupId``, :attr:`Trace.users`); the
library's :class:`~prsm.performance.scaling.SessionTracker` learns open sessions from them
and :class:`~prsm.performance.scaling.PredictivePolicy` holds a floor for them
(``session_wait_probability``) — that is "ours" in the main benchmark. This study sets it
beside the same policy without sessions and a relaxation, :class:`SessionOracleFloor` (not a
real policy): it knows the entire future of every session that has begun (arrival and
service time of each of its later requests) and holds the peak of their demand over
start-up + 60 s, like the oracle. No causal policy knows as much, so what it reaches bounds
what session modelling can give.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from prsm.performance.scaling import ScalingContext, ScalingDecision
from prsm.performance.sim import Scenario, Trace, make_policy, simulate

FloatArray = np.ndarray[Any, np.dtype[np.float64]]

#: a user's requests further apart than this start a new session (seconds), as the tracker
SESSION_GAP = 1800.0


def session_starts(trace: Trace) -> FloatArray:
    """For each request, when its session (its user's requests < :data:`SESSION_GAP` apart)
    began."""
    if trace.users is None:
        raise ValueError(f"{trace.name} names no users")
    first = np.empty(len(trace.times))
    last: dict[int, tuple[float, float]] = {}  # user -> (last arrival, session start)
    for i, (t, u) in enumerate(zip(trace.times.tolist(), trace.users.tolist(), strict=True)):
        prev = last.get(u)
        start = t if prev is None or t - prev[0] > SESSION_GAP else prev[1]
        first[i] = start
        last[u] = (t, start)
    return first


@dataclass(frozen=True)
class SessionOracleFloor:
    """See the module docstring (a relaxation: it reads begun sessions' future)."""

    inner: Any
    times: FloatArray
    service: FloatArray
    first: FloatArray
    reach: float = 180.0  # start-up 120 s + the oracle's 60 s look-ahead
    name: str = "session oracle floor"

    @property
    def interval(self) -> float:
        return float(self.inner.interval)

    def initial_state(self) -> Any:
        return self.inner.initial_state()

    def parameters(self) -> dict[str, Any]:
        return {"policy": "knows begun sessions' future, over " + self.inner.name}

    def decide(self, ctx: ScalingContext, state: Any) -> tuple[ScalingDecision, Any]:
        decision, state = self.inner.decide(ctx, state)
        now = ctx.now
        i = int(np.searchsorted(self.times, now - 700.0))
        j = int(np.searchsorted(self.times, now + self.reach, side="right"))
        ends = self.times[i:j] + self.service[i:j]
        known = (self.first[i:j] <= now) & (ends > now)
        starts = np.maximum(self.times[i:j][known], now)
        events = sorted(
            [(float(a), 1) for a in starts] + [(float(b), -1) for b in ends[known]],
            key=lambda e: (e[0], e[1]),
        )
        peak = busy = 0
        for when, step in events:
            if when > now + self.reach:
                break
            busy += step
            peak = max(peak, busy)
        target = min(20, max(decision.target, peak))
        return ScalingDecision.relative(target, ctx.target_replicas, decision.reason), state


def _row(res: Any, a: float, b: float | None, label: str) -> dict[str, Any]:
    sm = res.summary(a, b)
    return {
        "policy": label,
        "replica_hours": sm["replica_hours"],
        "violation_minutes": sm["violation_minutes"],
        "slo_breaches": sm["slo_breaches"],
        "p99_wait_s": sm["p99_wait_s"],
    }


def session_study(main: Scenario, fit: Scenario, ours: dict[str, Any]) -> dict[str, Any]:
    """Both periods: the HPA, ours without sessions, ours (with them, as chosen) and the
    relaxation over ours without sessions."""
    tr = fit.trace
    if tr.service_times is None:
        raise ValueError(f"{tr.name} has no service times")
    first = session_starts(tr)
    # without sessions, queued requests get their reactive slots back (nothing else anticipates)
    plain = {
        k: v
        for k, v in ours.items()
        if k not in ("session_wait_probability", "reactive_queue_share")
    }
    out: dict[str, Any] = {"session_gap_s": SESSION_GAP, "ours": ours}
    for period, sc in (("fitting_period", fit), ("report_period", main)):
        rows: list[dict[str, Any]] = []
        policies = {
            "hpa": make_policy("hpa", sc),
            "ours without sessions": make_policy("predictive", sc, plain),
            "ours": make_policy("predictive", sc, ours),
            "ours without sessions + begun sessions' future (relaxation)": SessionOracleFloor(
                make_policy("predictive", sc, plain), tr.times, tr.service_times, first
            ),
        }
        for label, policy in policies.items():
            res = simulate(sc.trace, policy, sc.settings)
            rows.append(_row(res, sc.report_start, sc.report_end, label))
            print(f"sessions, {period}: {rows[-1]}", flush=True)
        out[period] = rows
    return out
