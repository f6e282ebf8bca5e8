"""The other exact solvers on the same :class:`~._matrix.Matrix`: ``scipy.optimize.milp``
(scipy's bundled HiGHS: no warm start, no callbacks) and OR-Tools CP-SAT (the ``optimize``
extra; integer coefficients, so rows are scaled exactly where they can be and safely where
they cannot: demands rounded up, capacities down)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ..errors import DependencyMissingError
from ._highs import MILPResult, Progress
from ._matrix import Matrix
from ._problem import FloatArray

#: integer scale of capacity rows and of the objective in CP-SAT
CAPACITY_SCALE = 1000
OBJECTIVE_SCALE = 10_000


def solve_scipy(m: Matrix, *, time_limit: float, gap: float) -> MILPResult:
    """``scipy.optimize.milp`` on ``m``."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    res = milp(
        m.c,
        integrality=m.integer.astype(np.int64),
        bounds=Bounds(m.lb, m.ub),
        constraints=LinearConstraint(m.A, m.row_lo, m.row_hi),
        options={"time_limit": float(max(time_limit, 0.01)), "mip_rel_gap": float(gap)},
    )
    has = res.x is not None
    status = {0: "optimal", 1: "time_limit", 2: "infeasible"}.get(int(res.status), res.message)
    bound = getattr(res, "mip_dual_bound", None)
    return MILPResult(
        status,
        np.asarray(res.x) if has else None,
        m.offset - float(res.fun) if has else -math.inf,
        m.offset - float(bound) if bound is not None and math.isfinite(bound) else math.inf,
    )


def _exact_row(values: FloatArray) -> tuple[list[int], int] | None:
    """An integer multiplier making every value in the row integral, if a small one exists."""
    fracs = [Fraction(float(x)).limit_denominator(10_000) for x in values]
    if any(abs(float(f) - float(x)) > 1e-9 for f, x in zip(fracs, values, strict=True)):
        return None
    scale = math.lcm(*(f.denominator for f in fracs)) if fracs else 1
    if scale > 10**9:
        return None
    return [int(f * scale) for f in fracs], scale


def solve_cpsat(
    m: Matrix,
    *,
    time_limit: float,
    gap: float,
    start: FloatArray | None = None,
    workers: int = 2,
    progress: Progress | None = None,
) -> MILPResult:
    """OR-Tools CP-SAT on ``m`` (hinted with ``start``); ``progress`` as for HiGHS."""
    try:
        from ortools.sat.python import cp_model
    except ImportError as exc:
        raise DependencyMissingError("ortools", "optimize", "the CP-SAT solver") from exc

    model = cp_model.CpModel()
    ub = np.floor(m.ub + 1e-9).astype(np.int64)
    x = [model.new_int_var(0, int(ub[j]), f"z{j}") for j in range(m.n_cols)]
    A = m.A.tocsr()
    for i in range(A.shape[0]):
        s, e = A.indptr[i], A.indptr[i + 1]
        cols, vals = A.indices[s:e], A.data[s:e]
        lo, hi = m.row_lo[i], m.row_hi[i]
        exact = _exact_row(
            np.concatenate(
                [vals, [lo if math.isfinite(lo) else 0.0, hi if math.isfinite(hi) else 0.0]]
            )
        )
        if exact is not None:
            coeffs, scale = exact[0][:-2], exact[1]
            expr = sum(k * x[j] for j, k in zip(cols.tolist(), coeffs, strict=True))
            if math.isfinite(lo):
                model.add(expr >= math.ceil(lo * scale - 1e-9))
            if math.isfinite(hi):
                model.add(expr <= math.floor(hi * scale + 1e-9))
            continue
        # safe rounding: a row "load <= capacity" or "cover >= count" never gets easier
        S = CAPACITY_SCALE
        if math.isfinite(hi):
            ks = [math.ceil(v * S - 1e-9) if v > 0 else math.floor(v * S + 1e-9) for v in vals]
            model.add(
                sum(k * x[j] for j, k in zip(cols.tolist(), ks, strict=True))
                <= math.floor(hi * S + 1e-9)
            )
        if math.isfinite(lo):
            ks = [math.floor(v * S + 1e-9) if v > 0 else math.ceil(v * S - 1e-9) for v in vals]
            model.add(
                sum(k * x[j] for j, k in zip(cols.tolist(), ks, strict=True))
                >= math.ceil(lo * S - 1e-9)
            )
    obj = np.round(m.c * OBJECTIVE_SCALE).astype(np.int64)
    # minimise -objective (the offset included), so CP-SAT's relative gap is ours
    shift = round(m.offset * OBJECTIVE_SCALE)
    model.minimize(sum(int(k) * x[j] for j, k in enumerate(obj.tolist()) if k) - shift)
    if start is not None:
        for j, val in enumerate(np.round(start).astype(np.int64).tolist()):
            model.add_hint(x[j], val)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(max(time_limit, 0.01))
    solver.parameters.num_workers = int(workers)
    solver.parameters.relative_gap_limit = float(gap)

    class _Callback(cp_model.CpSolverSolutionCallback):  # type: ignore[misc]
        def on_solution_callback(self) -> None:
            if progress is None:
                return
            z = np.array([self.value(v) for v in x], dtype=np.float64)
            objective = m.offset - float(m.c @ z)
            bound = -self.best_objective_bound / OBJECTIVE_SCALE
            if progress(objective, bound, z):
                self.stop_search()

    status = solver.solve(model, _Callback())
    name = solver.status_name(status)
    has = name in ("OPTIMAL", "FEASIBLE")
    z = np.array([solver.value(v) for v in x], dtype=np.float64) if has else None
    # the bound is on the rounded objective; widen it by the rounding's worst case
    slack = float((np.abs(m.c * OBJECTIVE_SCALE - obj) * m.ub).sum() / OBJECTIVE_SCALE)
    bound = (
        -solver.best_objective_bound / OBJECTIVE_SCALE
        + slack
        + abs(shift / OBJECTIVE_SCALE - m.offset)
    )
    return MILPResult(
        {"OPTIMAL": "optimal", "FEASIBLE": "time_limit", "INFEASIBLE": "infeasible"}.get(
            name, name.lower()
        ),
        z,
        m.offset - float(m.c @ z) if z is not None else -math.inf,
        bound,
    )
