"""The MILP of a :class:`~._problem.Problem` as sparse matrices, in minimisation form.

Columns: one per eligible (class, type) pair (``v``), then one per type (``n``). Rows: one
coverage row per class, one capacity row per (type, dimension) that some pair loads, and the
budget row when a budget is set. Every solver back end reads this one description, so
they all solve exactly the same model; ``row_names`` name the rows for explanations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ._problem import DIMENSIONS, FloatArray, IntArray, Problem


@dataclass(frozen=True, slots=True, eq=False)
class Matrix:
    """``min c·z`` s.t. ``row_lo <= A z <= row_hi``, ``lb <= z <= ub``, ``z`` integer where
    ``integer``. ``z = [v (pairs), n (types)]``; the maximised objective is
    ``offset - c·z``.

    ``cap_row[r, j]``: the row of type ``r``'s dimension ``j`` (-1: none);
    ``budget_row``: the budget row (-1: none).
    """

    c: FloatArray
    offset: float
    lb: FloatArray
    ub: FloatArray
    integer: np.ndarray
    A: sp.csr_matrix
    row_lo: FloatArray
    row_hi: FloatArray
    row_names: tuple[str, ...]
    n_pairs: int
    cap_row: IntArray
    budget_row: int

    @property
    def n_cols(self) -> int:
        return int(self.c.shape[0])

    def split(self, z: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``(v, n)`` from a full column vector."""
        return z[: self.n_pairs], z[self.n_pairs :]


def build_matrix(p: Problem, *, unit_bound: IntArray | None = None) -> Matrix:
    """The sparse MILP of ``p`` (``unit_bound`` overrides the units' upper bounds)."""
    P, R = p.n_pairs, p.n_types
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    lo: list[float] = []
    hi: list[float] = []
    names: list[str] = []
    # coverage: every workload of each class served in full
    rows.append(p.pair_class)
    cols.append(np.arange(P))
    vals.append(p.cover)
    lo.extend(p.class_count.astype(float).tolist())
    hi.extend([np.inf] * p.n_classes)
    for c in range(p.n_classes):
        first = p.workloads[p.class_members[c][0]].name
        more = len(p.class_members[c]) - 1
        names.append(f"serve {first}" + (f" (+{more} alike)" if more else ""))
    # capacity: load of type r in dimension j within its units
    cap_row = np.full((R, len(DIMENSIONS)), -1, dtype=np.int64)
    row = p.n_classes
    for j, dim in enumerate(DIMENSIONS):
        loaded = np.zeros(R, dtype=bool)
        loaded[p.pair_type[p.unit_demand[:, j] > 0]] = True
        types = np.flatnonzero(loaded)
        cap_row[types, j] = row + np.arange(types.size)
        sel = p.unit_demand[:, j] > 0
        rows.append(cap_row[p.pair_type[sel], j])
        cols.append(np.flatnonzero(sel))
        vals.append(p.unit_demand[sel, j])
        rows.append(cap_row[types, j])
        cols.append(P + types)
        vals.append(-p.cap[types, j])
        lo.extend([-np.inf] * types.size)
        hi.extend([0.0] * types.size)
        names.extend(f"{dim} of {p.resources[int(t)].name}" for t in types)
        row += types.size
    budget_row = -1
    if p.budget is not None:
        budget_row = row
        rows.append(np.full(R, row))
        cols.append(P + np.arange(R))
        vals.append(p.cost)
        lo.append(-np.inf)
        hi.append(p.budget)
        names.append("budget")
        row += 1
    A = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(row, P + R)
    )
    ub_n = p.unit_bound if unit_bound is None else unit_bound
    cost = np.concatenate([-p.performance_weight * p.unit_perf, p.cost_weight * p.cost])
    return Matrix(
        c=cost,
        offset=p.performance_weight * p.perf_offset,
        lb=np.zeros(P + R),
        ub=np.concatenate([p.var_ub.astype(float), ub_n.astype(float)]),
        integer=np.ones(P + R, dtype=np.uint8),
        A=A,
        row_lo=np.array(lo),
        row_hi=np.array(hi),
        row_names=tuple(names),
        n_pairs=P,
        cap_row=cap_row,
        budget_row=budget_row,
    )
