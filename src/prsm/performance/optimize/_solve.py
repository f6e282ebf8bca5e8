"""The solve pipeline: LP bound, heuristics, then an exact solver, as an anytime search.

1. **LP relaxation** (HiGHS simplex): the proven bound, and the point the heuristics round.
2. **Greedy** (the floor) and **LP rounding + local search**: a good answer in well under a
   second on 1,000 workloads × 100 types.
3. **LP diving** when the gap is still above the target: units, then steps, fixed one batch at
   a time with the LP re-solved in between (the LP keeps moving everything else).
4. **Exact solve** (HiGHS MILP by default; CP-SAT or scipy's ``milp`` if chosen), warm-started
   from the best answer, until the gap against the best bound reaches the target or the time
   limit passes.

Every improvement is reported through ``report`` (an :class:`Event`), so a caller can show
progress and keep the best answer even if it has to stop the search from outside.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ._heuristics import Assignment, greedy, improve, round_lp
from ._highs import MILPResult, dive, solve_lp, solve_milp
from ._matrix import Matrix, build_matrix
from ._problem import FloatArray, IntArray, Problem, gap, pack_units

ExactSolver = Literal["highs", "cp-sat", "scipy", "none"]

#: LP diving runs on instances with at least this many (class, type) pairs
DIVE_FROM_PAIRS = 3000


@dataclass(frozen=True, slots=True)
class SolveOptions:
    """How one solve runs (picklable: it crosses to the worker process)."""

    time_limit: float = 10.0
    target_gap: float = 0.01
    exact: ExactSolver = "highs"
    heuristics: bool = True
    threads: int | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A step of the search: the best answer so far and the best bound."""

    elapsed: float
    phase: str
    objective: float
    bound: float
    gap: float
    v: IntArray | None = None  # the incumbent when it changed
    n: IntArray | None = None


@dataclass
class Outcome:
    """What a solve found. ``status``: ``optimal`` (gap ≈ 0), ``within_gap`` (gap ≤ target),
    ``time_limit`` (an answer above the target gap), ``infeasible`` (proven) or
    ``no_solution`` (none found in time, not proven infeasible)."""

    status: str
    v: IntArray | None
    n: IntArray | None
    objective: float
    bound: float
    gap: float
    method: str
    lp_bound: float
    seconds: float
    phases: list[dict[str, float | str]] = field(default_factory=list)


class _Search:
    """The state of one solve: the best answer, the best bound, the phases' log."""

    def __init__(self, p: Problem, opts: SolveOptions, report: Callable[[Event], None] | None):
        self.p, self.opts, self.report = p, opts, report
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + opts.time_limit
        self.best = -math.inf
        self.bound = math.inf
        self.v: IntArray | None = None
        self.n: IntArray | None = None
        self.method = "none"
        self.phases: list[dict[str, float | str]] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def gap(self) -> float:
        return gap(self.best, self.bound)

    def done(self) -> bool:
        return self.gap() <= self.opts.target_gap or time.perf_counter() >= self.deadline

    def log(self, phase: str, objective: float) -> None:
        self.phases.append(
            {"phase": phase, "seconds": round(self.elapsed(), 4), "objective": objective}
        )

    def emit(self, phase: str, changed: bool) -> None:
        if self.report is not None:
            self.report(
                Event(
                    self.elapsed(),
                    phase,
                    self.best,
                    self.bound,
                    self.gap(),
                    self.v if changed else None,
                    self.n if changed else None,
                )
            )

    def offer(self, a: Assignment, phase: str) -> None:
        """Keep ``a`` if it is feasible, still so once packed unit by unit, and better."""
        if not a.complete():
            self.log(phase, -math.inf)
            return
        a.trim()
        n = np.maximum(a.n, pack_units(self.p, a.v))
        p = self.p
        cost = float(p.cost @ n)
        objective = -p.cost_weight * cost + p.performance_weight * a.perf
        ok = bool((n <= p.available).all()) and (p.budget is None or cost <= p.budget + 1e-6)
        self.log(phase, objective if ok else -math.inf)
        if ok and objective > self.best + 1e-9:
            self.best, self.v, self.n, self.method = objective, a.v.copy(), n, phase
            self.emit(phase, True)

    def offer_point(self, z: FloatArray | None, phase: str) -> None:
        """Offer an exact solver's point (all columns)."""
        if z is not None:
            self.offer(Assignment(self.p, np.round(z[: self.p.n_pairs]).astype(np.int64)), phase)

    def on_progress(self, phase: str) -> Callable[[float, float, FloatArray | None], bool]:
        def progress(objective: float, bound: float, z: FloatArray | None) -> bool:
            if z is not None:
                self.offer_point(z, phase)
            if math.isfinite(bound) and bound < self.bound:
                self.bound = max(bound, self.best)
                self.emit(phase, False)
            return self.done()

        return progress


def solve(p: Problem, opts: SolveOptions, report: Callable[[Event], None] | None = None) -> Outcome:
    """Solve ``p`` (see the module docstring). Never raises for infeasibility: the caller
    explains an ``infeasible`` outcome."""
    s = _Search(p, opts, report)
    m = build_matrix(p)
    lp = solve_lp(m, threads=opts.threads)
    s.phases.append({"phase": "lp", "seconds": round(s.elapsed(), 4), "bound": lp.bound})
    if lp.status != "optimal":
        return Outcome(
            "infeasible",
            None,
            None,
            -math.inf,
            -math.inf,
            math.inf,
            "lp",
            -math.inf,
            s.elapsed(),
            s.phases,
        )
    s.bound = lp.bound
    s.emit("lp", False)
    v_lp, n_lp = m.split(lp.z)
    if opts.heuristics:
        s.offer(greedy(p), "greedy")
        # local search and diving pay off on large instances; small ones go to the exact
        # solver soon (their LP bound is weaker, and the MILP is quick)
        slice_ = min(0.1 * opts.time_limit, 0.05 + 2e-5 * p.n_pairs)
        s.offer(
            round_lp(p, v_lp, n_lp, deadline=min(s.deadline, time.perf_counter() + slice_)),
            "lp-rounding",
        )
        if not s.done() and p.n_pairs >= DIVE_FROM_PAIRS:
            z = dive(p, m, lp, deadline=min(s.deadline, time.perf_counter() + 2 * slice_))
            if z is None:
                s.log("lp-dive", -math.inf)
            else:
                a = Assignment(p, np.round(z[: m.n_pairs]).astype(np.int64))
                improve(a, deadline=min(s.deadline, time.perf_counter() + slice_))
                s.offer(a, "lp-dive")
    if not s.done() and opts.exact != "none":
        res = _exact(m, opts, s)
        s.log(opts.exact, res.objective)
        if res.status == "infeasible" and s.v is None:
            return Outcome(
                "infeasible",
                None,
                None,
                -math.inf,
                s.bound,
                math.inf,
                opts.exact,
                lp.bound,
                s.elapsed(),
                s.phases,
            )
        s.offer_point(res.z, opts.exact)
        if math.isfinite(res.bound) and res.bound < s.bound:
            s.bound = max(res.bound, s.best)
    g = s.gap()
    if s.v is None:
        status = "no_solution"
    elif g <= 1e-6:
        status = "optimal"
    elif g <= opts.target_gap:
        status = "within_gap"
    else:
        status = "time_limit"
    s.emit("done", False)
    return Outcome(status, s.v, s.n, s.best, s.bound, g, s.method, lp.bound, s.elapsed(), s.phases)


def _exact(m: Matrix, opts: SolveOptions, s: _Search) -> MILPResult:
    left = max(0.01, s.deadline - time.perf_counter())
    start = None if s.v is None or s.n is None else np.concatenate([s.v, s.n]).astype(np.float64)
    progress = s.on_progress(opts.exact)
    if opts.exact == "cp-sat":
        from ._backends import solve_cpsat

        return solve_cpsat(
            m,
            time_limit=left,
            gap=opts.target_gap,
            start=start,
            workers=opts.threads or 2,
            progress=progress,
        )
    if opts.exact == "scipy":
        from ._backends import solve_scipy

        return solve_scipy(m, time_limit=left, gap=opts.target_gap)
    return solve_milp(
        m,
        time_limit=left,
        gap=opts.target_gap,
        start=start,
        threads=opts.threads,
        progress=progress,
    )
