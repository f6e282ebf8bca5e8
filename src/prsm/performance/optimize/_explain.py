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

import math

import numpy as np
import scipy.sparse as sp

from ._highs import solve_lp, solve_milp
from ._matrix import Matrix, build_matrix
from ._model import WorkloadProfile
from ._problem import Problem
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
    from ._model import KindPerformance, placement

    fits = []
    for r in p.resources:
        perf = r.performance.get(w.kind)
        if perf is None:
            continue
        relaxed = placement(_with_slo(w, math.inf), r)
        if not isinstance(relaxed, str) and isinstance(perf, KindPerformance):
            fits.append((perf.latency_ms, r.name))
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


def _with_slo(w: WorkloadProfile, slo: float) -> WorkloadProfile:
    from dataclasses import replace

    return replace(w, latency_slo_ms=slo if math.isfinite(slo) else 1e300)


def elastic_conflicts(p: Problem, *, time_limit: float) -> tuple[list[Conflict], bool]:
    """The capacity and budget conflicts of ``p`` and whether the amounts are exact."""
    m = build_matrix(p, unit_bound=_fill_bound(p))
    e = _elastic(p, m)
    P, R = p.n_pairs, p.n_types
    res = solve_milp(e, time_limit=time_limit, gap=1e-6)
    exact = res.z is not None and res.status == "optimal"
    z = res.z
    if z is None:
        lp = solve_lp(e)
        if lp.status != "optimal":
            raise AssertionError("the elastic allocation program has no solution")
        z = lp.z
    n = z[P : P + R]
    stretch_units = z[P + R : P + 2 * R]
    stretch_budget = float(z[P + 2 * R]) if p.budget is not None else 0.0
    short = np.flatnonzero(stretch_units > 1e-6)
    short_set = set(short.tolist())
    out = []
    for t in short.tolist():
        bound = _bound_to(p, t, short_set)
        r = p.resources[t]
        needed = float(p.available[t] + stretch_units[t])
        out.append(
            Conflict(
                f"available units of {r.name}",
                float(r.available),
                round(needed, 3) if not exact else float(round(needed)),
                "units",
                bound,
                "the workloads it binds can only run on types that are short" if bound else "",
            )
        )
    if stretch_budget > 1e-6 and p.budget is not None:
        cost = float(p.cost @ n)
        out.append(
            Conflict(
                "budget",
                p.budget,
                round(p.budget + stretch_budget, 4),
                "$/h",
                (),
                f"the cheapest allocation that meets every SLO costs {cost:.2f} $/h",
            )
        )
    return out, exact


def _fill_bound(p: Problem) -> np.ndarray:
    full = np.zeros((p.n_types, p.cap.shape[1]))
    np.add.at(full, p.pair_type, p.unit_demand * p.var_ub[:, None])
    fill = full / np.where(p.cap > 0, p.cap, np.inf)
    return np.maximum(np.ceil(fill.max(axis=1) - 1e-9), p.available).astype(np.int64)


def _elastic(p: Problem, m: Matrix) -> Matrix:
    """``m`` plus a stretch column per type (extra units, priced at the unit price) and for
    the budget (priced at a dollar), and the rows that let them stretch."""
    P, R = p.n_pairs, p.n_types
    nb = 1 if p.budget is not None else 0
    rows_old = m.A.shape[0]
    A = m.A.tolil(copy=True)
    A.resize((rows_old, P + 2 * R + nb))
    if m.budget_row >= 0:
        A[m.budget_row, P + 2 * R] = -1.0  # cost - stretch <= budget
    avail = sp.hstack(
        [
            sp.csr_matrix((R, P)),
            sp.identity(R, format="csr"),
            -sp.identity(R, format="csr"),
            sp.csr_matrix((R, nb)),
        ]
    )
    A2 = sp.vstack([A.tocsr(), avail]).tocsr()
    fill = m.ub[P:]
    c = np.concatenate([np.zeros(P + R), p.cost, np.ones(nb)])
    c = c + np.concatenate([np.zeros(P), 1e-6 * p.cost, np.zeros(R + nb)])  # then cheapest
    return Matrix(
        c=c,
        offset=0.0,
        lb=np.zeros(P + 2 * R + nb),
        ub=np.concatenate([m.ub[:P], fill, fill, np.full(nb, np.inf)]),
        integer=np.concatenate([np.ones(P + 2 * R, dtype=np.uint8), np.zeros(nb, dtype=np.uint8)]),
        A=A2,
        row_lo=np.concatenate([m.row_lo, np.full(R, -np.inf)]),
        row_hi=np.concatenate([m.row_hi, p.available.astype(np.float64)]),
        row_names=m.row_names + tuple(f"available units of {r.name}" for r in p.resources),
        n_pairs=P,
        cap_row=m.cap_row,
        budget_row=m.budget_row,
    )


def _bound_to(p: Problem, t: int, short: set[int]) -> tuple[str, ...]:
    """Workloads that may run on type ``t`` and on no type outside the short ones."""
    names = []
    for c in np.unique(p.pair_class[p.pair_type == t]).tolist():
        types = set(p.pair_type[p.pair_class == c].tolist())
        if types <= short:
            names.extend(p.workloads[w].name for w in p.class_members[c])
    return tuple(names)
