"""HiGHS (through ``highspy``) on a :class:`~._matrix.Matrix`: the LP relaxation, LP diving and
the exact MILP with progress callbacks.

HiGHS keeps its factorisation between solves, so a dive that changes a few bounds and
re-solves costs a few dual simplex iterations each time.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DependencyMissingError
from ._matrix import Matrix
from ._problem import FloatArray, Problem

#: ``(objective, bound)`` of the maximised problem, called as HiGHS improves either
Progress = Callable[[float, float, "FloatArray | None"], bool]


_quiet: list[bool] = []  # non-empty once the banner was swallowed


def _highspy() -> Any:
    """``highspy``, its one-time banner (printed by C++ on the first ``Highs()``) swallowed."""
    try:
        import highspy
    except ImportError as exc:  # pragma: no cover - highspy is a core dependency
        raise DependencyMissingError(
            "highspy", "optimize", "the allocation solver", install="pip install highspy"
        ) from exc
    if not _quiet:
        _quiet.append(True)
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 1)
                highspy.Highs()  # type: ignore[no-untyped-call]  # the banner goes to /dev/null
        finally:
            os.dup2(saved, 1)
            os.close(saved)
    return highspy


def make_highs(m: Matrix, *, integer: bool, threads: int | None = None) -> Any:
    """A silent ``highspy.Highs`` holding ``m`` (as an LP unless ``integer``)."""
    highspy = _highspy()
    h = highspy.Highs()
    h.silent()
    lp = highspy.HighsLp()
    lp.num_col_ = m.n_cols
    lp.num_row_ = m.A.shape[0]
    lp.col_cost_ = m.c
    lp.offset_ = -m.offset  # HiGHS minimises -objective, so its relative gap is ours
    lp.col_lower_ = m.lb
    lp.col_upper_ = m.ub
    lp.row_lower_ = m.row_lo
    lp.row_upper_ = m.row_hi
    A = m.A.tocsc()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr
    lp.a_matrix_.index_ = A.indices
    lp.a_matrix_.value_ = A.data
    if integer:
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
            for i in m.integer
        ]
    h.passModel(lp)
    if threads is not None:
        h.setOptionValue("threads", int(threads))
    return h


def _optimal(h: Any) -> bool:
    return bool(h.getModelStatus() == _highspy().HighsModelStatus.kOptimal)


@dataclass
class LPResult:
    """The LP relaxation: ``status`` ('optimal' or 'infeasible'), the bound it proves on the
    maximised objective, the point (``z``: all columns) and the live HiGHS object."""

    status: str
    bound: float
    z: FloatArray
    highs: Any


def solve_lp(m: Matrix, *, threads: int | None = None) -> LPResult:
    """The LP relaxation of ``m`` (dual simplex)."""
    h = make_highs(m, integer=False, threads=threads)
    h.run()
    if not _optimal(h):
        status = h.modelStatusToString(h.getModelStatus())
        return LPResult("infeasible" if "nfeasible" in status else status, -np.inf, np.zeros(0), h)
    z = np.array(h.getSolution().col_value)
    return LPResult("optimal", -h.getInfo().objective_function_value, z, h)


def dive(
    p: Problem, m: Matrix, lp: LPResult, *, deadline: float, batch: float = 0.25
) -> FloatArray | None:
    """Round the LP point to an integer one by fixing bounds and re-solving (changes
    ``lp.highs``): first the units, most expensive fraction first (down when the LP pays less
    for it than the rounded-up unit costs, else up), then the steps, a batch of the largest
    fractions up at a time; a step that fits neither way buys one more unit of its type.
    Returns the integer point, or ``None`` if the dive gets stuck or ``deadline`` passes."""
    h = lp.highs
    P = m.n_pairs
    ub_n = m.ub[P:].copy()

    def point() -> tuple[FloatArray, float]:
        return np.array(h.getSolution().col_value), float(h.getInfo().objective_function_value)

    while time.perf_counter() < deadline:  # units
        z, obj = point()
        n = z[P:]
        frac = n - np.floor(n + 1e-7)
        cand = np.flatnonzero((frac > 1e-6) & (frac < 1 - 1e-6))
        if cand.size == 0:
            break
        t = int(cand[np.argmax(frac[cand] * p.cost[cand])])
        lo, hi = float(np.floor(n[t] + 1e-7)), float(np.ceil(n[t] - 1e-7))
        h.changeColBounds(P + t, lo, lo)
        h.run()
        down = h.getInfo().objective_function_value if _optimal(h) else np.inf
        if down > obj + (hi - n[t]) * p.cost[t] * p.cost_weight:
            h.changeColBounds(P + t, hi, hi)
            h.run()
            if not _optimal(h):
                return None
            ub_n[t] = hi
        else:
            ub_n[t] = lo
    else:
        return None
    while time.perf_counter() < deadline:  # steps
        z, _ = point()
        v = z[:P]
        frac = v - np.floor(v + 1e-7)
        cand = np.flatnonzero((frac > 1e-6) & (frac < 1 - 1e-6))
        if cand.size == 0:
            return z
        order = cand[np.argsort(-frac[cand])]
        k = max(1, int(order.size * batch))
        if k > 1:
            for j in order[:k].tolist():
                h.changeColBounds(j, float(np.ceil(v[j])), float(m.ub[j]))
            h.run()
            if _optimal(h):
                continue
            for j in order[:k].tolist():
                h.changeColBounds(j, 0.0, float(m.ub[j]))
            h.run()
        j = int(order[0])
        for lo, hi in ((float(np.ceil(v[j])), float(m.ub[j])), (0.0, float(np.floor(v[j])))):
            h.changeColBounds(j, lo, hi)
            h.run()
            if _optimal(h):
                break
        else:
            t = int(p.pair_type[j])
            if ub_n[t] + 1 > p.available[t]:
                return None
            ub_n[t] += 1
            h.changeColBounds(P + t, ub_n[t], ub_n[t])
            h.changeColBounds(j, float(np.ceil(v[j])), float(m.ub[j]))
            h.run()
            if not _optimal(h):
                return None
    return None


@dataclass
class MILPResult:
    """An exact solve: ``status`` ('optimal', 'time_limit', 'infeasible', 'interrupted', ...),
    the best point found (``None`` if none), its objective and the proven bound."""

    status: str
    z: FloatArray | None
    objective: float
    bound: float


def solve_milp(
    m: Matrix,
    *,
    time_limit: float,
    gap: float,
    start: FloatArray | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
) -> MILPResult:
    """Solve ``m`` exactly with HiGHS, warm-started from ``start``; ``progress(objective,
    bound, point)`` is called on each improvement and now and then, and may return ``True``
    to stop the search (e.g. when a gap measured against a better bound is reached)."""
    highspy = _highspy()
    h = make_highs(m, integer=True, threads=threads)
    h.setOptionValue("time_limit", float(max(time_limit, 0.01)))
    h.setOptionValue("mip_rel_gap", float(gap))
    if start is not None:
        sol = highspy.HighsSolution()
        sol.col_value = [float(x) for x in start]
        sol.value_valid = True
        h.setSolution(sol)
    stop = False
    if progress is not None:

        def on_improve(e: Any) -> None:
            nonlocal stop
            d = e.data_out
            z = np.array(d.mip_solution)
            stop = bool(progress(-d.objective_function_value, -d.mip_dual_bound, z))

        def on_tick(e: Any) -> None:
            nonlocal stop
            d = e.data_out
            if not stop:
                stop = bool(progress(-d.objective_function_value, -d.mip_dual_bound, None))
            if stop:
                e.interrupt()

        h.cbMipImprovingSolution.subscribe(on_improve)
        h.cbMipInterrupt.subscribe(on_tick)
    h.run()
    info = h.getInfo()
    status = h.modelStatusToString(h.getModelStatus()).lower()
    has = info.primal_solution_status == 2  # kSolutionStatusFeasible
    z = np.array(h.getSolution().col_value) if has else None
    objective = -info.objective_function_value if has else -np.inf
    bound = -info.mip_dual_bound
    if "optimal" in status:
        status = "optimal"
    elif "infeasible" in status:
        status = "infeasible"
    elif "time" in status:
        status = "time_limit"
    elif stop or "interrupt" in status:
        status = "interrupted"
    return MILPResult(status, z, objective, bound)
