"""Why an allocation problem has no answer: which constraints conflict and by how much.

Two kinds of conflict:

* **Structural**: a workload no resource type can run (its latency SLO is below every
  allowed type's latency, no type has a figure for its kind, a replica fits no unit, or its
  ``allowed_resources`` exclude them all). Found before any solve, named per workload.
* **Capacity and budget**: the *elastic* program: the same model with each type's
  available units and the budget allowed to stretch, at a price (a unit's price for an extra
  unit, a dollar for a dollar of budget), minimising the stretch. Its answer is the cheapest
  way to make room: which limits must give way, and by how much. It is solved exactly (a MILP
  with a time limit); if that times out, the LP relaxation's stretch is reported instead, a
  lower bound on what is needed (``exact=False``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from ._highs import solve_lp, solve_milp
from ._matrix import Matrix, build_matrix
from ._model import WorkloadProfile, placement
from ._problem import IntArray, Problem
from ._result import Conflict


def structural_conflicts(p: Problem) -> list[Conflict]:
    """One conflict per workload that no resource type can run."""
    out = []
    by_name = {w.name: w for w in p.workloads}
    for name, reasons in p.no_home.items():
        w = by_name[name]
        slo = _slo_conflict(w, p)
        if slo is not None:
            out.append(slo)
            continue
        shown = "; ".join(f"{r}: {why}" for r, why in list(reasons.items())[:6])
        more = f"; (+{len(reasons) - 6} more types)" if len(reasons) > 6 else ""
        out.append(
            Conflict(
                f"placement of {name}",
                None,
                None,
                "",
                (name,),
                f"no type can run it: {shown}{more}",
            )
        )
    return out


def _slo_conflict(w: WorkloadProfile, p: Problem) -> Conflict | None:
    """The SLO conflict of ``w`` if only its latency SLO keeps it off every type that could
    otherwise run it: the SLO it would need."""
    relaxed = dataclasses.replace(w, latency_slo_ms=1e300)  # any latency meets it
    fits = [
        (r.performance[w.kind].latency_ms, r.name)
        for r in p.resources
        if not isinstance(placement(relaxed, r), str)
    ]
    if not fits:
        return None
    fastest, where = min(fits)
    return Conflict(
        f"latency SLO of {w.name}",
        w.latency_slo_ms,
        fastest,
        "ms",
        (w.name,),
        f"the fastest type it may run on is {where} at {fastest:g} ms",
    )


def elastic_conflicts(p: Problem, *, time_limit: float) -> tuple[list[Conflict], bool]:
    """The capacity and budget conflicts of ``p`` and whether the amounts are exact.

    First the units: the elastic program without the budget says which types are short and
    by how many units. Then the budget: the cheapest allocation (with those extra units, if
    any) says what budget would do."""
    P, R = p.n_pairs, p.n_types
    free = dataclasses.replace(p, budget=None)
    fill = _fill_bound(p)
    e = _elastic(free, build_matrix(free, unit_bound=fill))
    z, exact = _solve(e, time_limit)
    stretch = np.round(z[P + R : P + 2 * R], 6)
    short = np.flatnonzero(stretch > 1e-6)
    out = []
    for t in short.tolist():
        bound = _bound_to(p, t, set(short.tolist()))
        r = p.resources[t]
        needed = float(p.available[t] + stretch[t])
        out.append(
            Conflict(
                f"available units of {r.name}",
                float(r.available),
                needed if not exact else float(round(needed)),
                "units",
                bound,
                "the workloads it binds can only run on types that are short" if bound else "",
            )
        )
    if p.budget is not None:
        cheapest = dataclasses.replace(free, cost_weight=1.0, performance_weight=0.0)
        units = np.minimum(fill, p.available + np.ceil(stretch - 1e-9).astype(np.int64))
        m = build_matrix(cheapest, unit_bound=units)
        res = solve_milp(m, time_limit=time_limit, gap=1e-6)
        cost = -res.bound if res.status != "optimal" else -res.objective
        exact = exact and res.status == "optimal"
        if cost > p.budget + 1e-6:
            more = " with the extra units above" if out else ""
            out.append(
                Conflict(
                    "budget",
                    p.budget,
                    round(cost, 4),
                    "$/h",
                    (),
                    f"the cheapest allocation that meets every SLO{more} costs {cost:.2f} $/h",
                )
            )
    return out, exact


def _solve(m: Matrix, time_limit: float) -> tuple[np.ndarray, bool]:
    """The elastic program's point: exact (MILP) if it finishes, else the LP's (a bound)."""
    res = solve_milp(m, time_limit=time_limit, gap=1e-6)
    if res.z is not None and res.status == "optimal":
        return res.z, True
    lp = solve_lp(m)
    if lp.status != "optimal":
        raise AssertionError("the elastic allocation program has no solution")
    return lp.z, False


def _fill_bound(p: Problem) -> IntArray:
    full = np.zeros((p.n_types, p.cap.shape[1]))
    np.add.at(full, p.pair_type, p.unit_demand * p.var_ub[:, None])
    fill = full / np.where(p.cap > 0, p.cap, np.inf)
    out: IntArray = np.maximum(np.ceil(fill.max(axis=1) - 1e-9), p.available).astype(np.int64)
    return out


def _elastic(p: Problem, m: Matrix) -> Matrix:
    """``m`` (built without a budget) plus a stretch column per type, extra units priced at
    the unit price, and the rows ``n_r - stretch_r <= available_r``."""
    P, R = p.n_pairs, p.n_types
    A = sp.vstack(
        [
            sp.hstack([m.A, sp.csr_matrix((m.A.shape[0], R))]),
            sp.hstack(
                [sp.csr_matrix((R, P)), sp.identity(R, format="csr"), -sp.identity(R, format="csr")]
            ),
        ]
    ).tocsr()
    fill = m.ub[P:]
    # the stretch first, then the cheapest units
    c = np.concatenate([np.zeros(P), 1e-6 * p.cost, p.cost])
    return Matrix(
        c=c,
        offset=0.0,
        lb=np.zeros(P + 2 * R),
        ub=np.concatenate([m.ub[:P], fill, fill]),
        integer=np.ones(P + 2 * R, dtype=np.uint8),
        A=A,
        row_lo=np.concatenate([m.row_lo, np.full(R, -np.inf)]),
        row_hi=np.concatenate([m.row_hi, p.available.astype(np.float64)]),
        row_names=m.row_names + tuple(f"available units of {r.name}" for r in p.resources),
        n_pairs=P,
        cap_row=m.cap_row,
        budget_row=-1,
    )


def _bound_to(p: Problem, t: int, short: set[int]) -> tuple[str, ...]:
    """Workloads that may run on type ``t`` and on no type outside the short ones."""
    names: list[str] = []
    for c in np.unique(p.pair_class[p.pair_type == t]).tolist():
        types = set(p.pair_type[p.pair_class == c].tolist())
        if types <= short:
            names.extend(p.workloads[w].name for w in p.class_members[c])
    return tuple(names)
