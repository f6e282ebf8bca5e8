"""``python -m benchmarks.autoscaling --sessions``: user sessions as the arrival model.

The Alibaba trace names each request's user (``groupId``): 2,204 users on the fitting period,
whose requests come in sessions (a user's requests less than :data:`SESSION_GAP` apart; the
median gap between a user's consecutive requests is 69 s). A real gateway knows the user of
every request (API key, ``user`` field), so a policy may use who is active. Two policies put a
floor under another policy's target:

- :class:`SessionFloor` (causal): each user active in the last :data:`SESSION_GAP` brings the
  expected number of requests in the window a replica asked for now can serve within the SLO
  (:data:`WINDOW`: ready after the 120 s start-up, a request may wait 30 s), looked up by the
  time since the user's last request and how many requests the session has had
  (:func:`continuation_table`, fitted on days before :data:`TABLE_END`); users who are not
  active yet arrive at the rate of new sessions over the last hour. The floor is the Erlang-C
  replica count for that rate (wait ≤ SLO with probability ``1 - wait_probability``), held
  for ``hold`` seconds.
- :class:`SessionOracleFloor` (a relaxation, not a real policy): it knows the entire future of
  every session that has begun (arrival and service time of each of its later requests) and
  holds the peak of their demand over start-up + 60 s, like the oracle. No causal policy knows
  as much, so what it reaches bounds what session modelling can give.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prsm.performance.scaling import ScalingContext, ScalingDecision, replicas_for
from prsm.performance.sim import Scenario, make_policy, simulate

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]

#: a user's requests further apart than this start a new session (seconds)
SESSION_GAP = 1800.0
#: the arrivals, from now, that a replica asked for now can serve within the SLO
WINDOW = (90.0, 210.0)
#: time since a user's last request, the continuation table's steps (seconds)
TAU_STEP = 15.0
#: the session's requests so far: 1, 2–3, 4–9, 10 or more
RANK_EDGES = (1, 2, 4, 10)
#: the continuation table is fitted on the trace before this date (11-15 → 11-26)
TABLE_END = "2024-11-26 00:00"
#: the causal floor's ``wait_probability`` grid; the rule (fixed before the report period
#: was run): the fewest violation minutes on the fitting period at no more replica-hours
#: than the HPA there
GRID = (0.06, 0.05, 0.04, 0.03)


@dataclass(frozen=True)
class Sessions:
    """Per request of the trace (in the simulator's order): arrival, service time, user,
    its session's first arrival and how many requests the session has had with it."""

    times: FloatArray
    service: FloatArray
    user: IntArray
    first: FloatArray
    rank: IntArray
    starts: FloatArray = field(repr=False)  # arrivals that begin a session, sorted

    @staticmethod
    def read(path: Path, times: FloatArray, service: FloatArray, epoch: float) -> Sessions:
        """``groupId`` of each row of the Alibaba LoRA file, in the order of the trace that
        :func:`prsm.performance.sim.read_alibaba_lora` read (``times``, ``epoch``)."""
        stamps, names = [], []
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                moment = dt.datetime.fromisoformat(row["gmt_create"].strip())
                stamps.append(moment.replace(tzinfo=dt.UTC).timestamp())
                names.append(row["groupId"])
        order = np.argsort(np.asarray(stamps), kind="stable")
        t = np.asarray(stamps)[order] - epoch
        if t.shape != times.shape or not np.allclose(t, times):
            raise ValueError(f"{path}: rows do not line up with the trace's arrivals")
        codes = {n: i for i, n in enumerate(dict.fromkeys(names))}
        user = np.asarray([codes[names[i]] for i in order], dtype=np.int64)
        first = np.empty(len(t))
        rank = np.empty(len(t), dtype=np.int64)
        new = np.zeros(len(t), dtype=bool)
        last: dict[int, tuple[float, float, int]] = {}  # user -> (last arrival, first, rank)
        for i, (ti, u) in enumerate(zip(t.tolist(), user.tolist(), strict=True)):
            prev = last.get(u)
            if prev is None or ti - prev[0] > SESSION_GAP:
                new[i] = True
                prev = (ti, ti, 0)
            first[i], rank[i] = prev[1], prev[2] + 1
            last[u] = (ti, prev[1], prev[2] + 1)
        return Sessions(t, service, user, first, rank, t[new])


def rank_bucket(rank: int) -> int:
    return int(np.searchsorted(RANK_EDGES, rank, side="right")) - 1


def continuation_table(s: Sessions, until: float) -> FloatArray:
    """``table[b, k]``: after a request of rank bucket ``b`` and ``k·TAU_STEP`` seconds with
    no further request from its user, the mean number of that user's requests in
    ``[now + WINDOW[0], now + WINDOW[1])`` (from the requests before ``until``)."""
    taus = np.arange(0.0, SESSION_GAP + TAU_STEP, TAU_STEP)
    num = np.zeros((len(RANK_EDGES), len(taus)))
    den = np.zeros_like(num)
    per_user: dict[int, list[int]] = {}
    for i, u in enumerate(s.user.tolist()):
        per_user.setdefault(u, []).append(i)
    for idx in per_user.values():
        ts = s.times[idx]
        gaps = np.append(np.diff(ts), np.inf)
        for j, i in enumerate(idx):
            if s.times[i] >= until:
                break
            quiet = gaps[j] > taus  # no later request yet after tau seconds
            lo = np.searchsorted(ts, s.times[i] + taus + WINDOW[0])
            hi = np.searchsorted(ts, s.times[i] + taus + WINDOW[1])
            b = rank_bucket(int(s.rank[i]))
            num[b] += quiet * (hi - lo)
            den[b] += quiet
    out: FloatArray = num / np.maximum(den, 1.0)
    return out


@dataclass(frozen=True)
class SessionFloor:
    """See the module docstring: ``inner``'s target, never below the session floor."""

    inner: Any
    sessions: Sessions
    table: FloatArray
    wait_probability: float = 0.05
    slo: float = 30.0
    hold: float = 60.0
    new_window: float = 3600.0
    name: str = "session floor"

    @property
    def interval(self) -> float:
        return float(self.inner.interval)

    def initial_state(self) -> tuple[Any, tuple[tuple[float, int], ...]]:
        return self.inner.initial_state(), ()

    def parameters(self) -> dict[str, Any]:
        return {
            "policy": "session floor over " + self.inner.name,
            "wait_probability": self.wait_probability,
            "hold_s": self.hold,
            "window_s": WINDOW,
            "session_gap_s": SESSION_GAP,
            "inner": self.inner.parameters(),
        }

    def expected_rate(self, now: float) -> float:
        """Requests per second expected in the window: active users' and new sessions'."""
        s = self.sessions
        i = int(np.searchsorted(s.times, now - SESSION_GAP))
        j = int(np.searchsorted(s.times, now, side="right"))
        last: dict[int, int] = {}
        for k in range(i, j):
            last[int(s.user[k])] = k
        cols = self.table.shape[1] - 1
        expected = sum(
            float(
                self.table[
                    rank_bucket(int(s.rank[k])), min(cols, int((now - s.times[k]) // TAU_STEP))
                ]
            )
            for k in last.values()
        )
        started = np.searchsorted(s.starts, now, side="right") - np.searchsorted(
            s.starts, now - self.new_window
        )
        return expected / (WINDOW[1] - WINDOW[0]) + float(started) / self.new_window

    def decide(
        self, ctx: ScalingContext, state: tuple[Any, tuple[tuple[float, int], ...]]
    ) -> tuple[ScalingDecision, tuple[Any, tuple[tuple[float, int], ...]]]:
        decision, inner_state = self.inner.decide(ctx, state[0])
        rate = self.expected_rate(ctx.now)
        service = ctx.service_time or 27.0
        floor = (
            replicas_for(
                rate, service, 1, wait=self.slo, probability=self.wait_probability, max_replicas=20
            )
            if rate > 0
            else 0
        )
        recent = (*(r for r in state[1] if r[0] > ctx.now - self.hold), (ctx.now, floor))
        target = min(20, max(decision.target, *(f for _, f in recent)))
        out = ScalingDecision.relative(
            target, ctx.target_replicas, f"{decision.reason}; session floor {floor}"
        )
        return out, (inner_state, recent)


@dataclass(frozen=True)
class SessionOracleFloor:
    """See the module docstring (a relaxation: it reads begun sessions' future)."""

    inner: Any
    sessions: Sessions
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
        s, now = self.sessions, ctx.now
        i = int(np.searchsorted(s.times, now - 700.0))
        j = int(np.searchsorted(s.times, now + self.reach, side="right"))
        ends = s.times[i:j] + s.service[i:j]
        known = (s.first[i:j] <= now) & (ends > now)
        starts = np.maximum(s.times[i:j][known], now)
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


def session_study(
    path: Path, main: Scenario, fit: Scenario, ours: dict[str, Any]
) -> dict[str, Any]:
    """The fitting period (HPA, ours, the relaxation over ours, the causal floor's grid), the
    choice by :data:`GRID`'s rule, then the report period (HPA, ours, the choice)."""
    tr = fit.trace
    if tr.service_times is None:
        raise ValueError(f"{tr.name} has no service times")
    sessions = Sessions.read(path, tr.times, tr.service_times, tr.epoch)
    table = continuation_table(sessions, tr.at(TABLE_END))

    def floor(sc: Scenario, p: float) -> SessionFloor:
        hpa0 = make_policy("hpa", sc, {"scale_down_stabilization": 0.0})
        return SessionFloor(hpa0, sessions, table, wait_probability=p)

    def run(sc: Scenario, policy: Any, label: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        row = _row(simulate(sc.trace, policy, sc.settings), sc.report_start, sc.report_end, label)
        rows.append(row)
        print(f"sessions: {label}: {row}", flush=True)
        return row

    fit_rows: list[dict[str, Any]] = []
    hpa = run(fit, make_policy("hpa", fit), "hpa", fit_rows)
    run(fit, make_policy("predictive", fit, ours), "ours", fit_rows)
    run(
        fit,
        SessionOracleFloor(make_policy("predictive", fit, ours), sessions),
        "ours + begun sessions' future (relaxation)",
        fit_rows,
    )
    grid = [
        run(fit, floor(fit, p), f"session floor {p}", fit_rows) | {"wait_probability": p}
        for p in GRID
    ]
    within = [g for g in grid if g["replica_hours"] <= hpa["replica_hours"]]
    chosen = min(within or grid, key=lambda g: (g["violation_minutes"], g["replica_hours"]))
    p = float(chosen["wait_probability"])
    report_rows: list[dict[str, Any]] = []
    run(main, make_policy("hpa", main), "hpa", report_rows)
    run(main, make_policy("predictive", main, ours), "ours", report_rows)
    run(main, floor(main, p), f"session floor {p}", report_rows)
    return {
        "session_gap_s": SESSION_GAP,
        "window_s": WINDOW,
        "table_fitted_before": TABLE_END,
        "continuation_table": np.round(table[:, :: int(60 / TAU_STEP)], 4).tolist(),
        "fitting_period": fit_rows,
        "chosen_wait_probability": p,
        "report_period": report_rows,
    }
