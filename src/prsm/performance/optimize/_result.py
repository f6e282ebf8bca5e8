"""What the optimiser returns: the allocation, and the conflicts of an infeasible input."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ._problem import DIMENSIONS, IntArray, Problem
from ._solve import Outcome


@dataclass(frozen=True, slots=True)
class WorkloadAllocation:
    """Where one workload runs: ``replicas`` per resource type, and the latency and SLO
    headroom its traffic gets (weighted by the share of traffic each type carries)."""

    workload: str
    replicas: Mapping[str, int]
    share: Mapping[str, float]
    latency_ms: float
    headroom: float


@dataclass(frozen=True, slots=True)
class ResourceUsage:
    """Units of one resource type in use, what they cost, and how full they are."""

    resource: str
    units: int
    available: int
    cost_per_hour: float
    cpu_used: float
    cpu_capacity: float
    memory_gb_used: float
    memory_gb_capacity: float
    gpus_used: float
    gpus_capacity: float


@dataclass(frozen=True, slots=True)
class Allocation:
    """An answer of :meth:`ResourceOptimizer.optimize_allocation`.

    ``cost_per_hour`` ($/h), ``performance`` (the priority-weighted SLO headroom), their
    weighted ``objective`` (``-cost_weight × cost + performance_weight × performance``), the
    proven upper ``bound`` on the objective and the relative ``gap`` between them; ``status``
    is ``optimal``, ``within_gap`` (gap ≤ the target) or ``time_limit`` (stopped above it);
    ``solver`` says which step found the answer (``greedy``, ``lp-rounding``, ``lp-dive``,
    ``highs``, ``cp-sat``, ``scipy``), ``seconds`` how long the solve took.
    """

    workloads: tuple[WorkloadAllocation, ...]
    resources: tuple[ResourceUsage, ...]
    cost_per_hour: float
    performance: float
    objective: float
    bound: float
    gap: float
    status: str
    solver: str
    seconds: float
    lp_bound: float
    cost_weight: float
    performance_weight: float
    budget_per_hour: float | None
    phases: tuple[Mapping[str, Any], ...] = ()

    def workload(self, name: str) -> WorkloadAllocation:
        for w in self.workloads:
            if w.workload == name:
                return w
        raise KeyError(name)

    @property
    def units(self) -> dict[str, int]:
        """Units per resource type in use."""
        return {r.resource: r.units for r in self.resources}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (infinities as ``None``)."""
        out = asdict(self)
        out["workloads"] = [dict(asdict(w)) for w in self.workloads]
        out["resources"] = [asdict(r) for r in self.resources]
        out["phases"] = [dict(ph) for ph in self.phases]
        return _finite(out)  # type: ignore[no-any-return]


def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


@dataclass(frozen=True, slots=True)
class Conflict:
    """One constraint that must give way for any allocation to exist, and by how much.

    ``constraint``: what it is (``available units of p5.48xlarge``, ``budget``, ``latency
    SLO of chat-7b``); ``limit``: its value; ``needed``: the least value that would make room
    (``None`` where no value would); ``unit``: of both; ``workloads``: those it binds
    (e.g. the workloads only that type can serve within their SLO); ``detail``: more words.
    """

    constraint: str
    limit: float | None
    needed: float | None
    unit: str
    workloads: tuple[str, ...] = ()
    detail: str = ""

    @property
    def short_by(self) -> float | None:
        if self.limit is None or self.needed is None:
            return None
        return self.needed - self.limit

    def __str__(self) -> str:
        if self.limit is not None and self.needed is not None:
            u = " $/h" if self.unit == "$/h" else f" {self.unit}"
            text = f"{self.constraint}: limit {self.limit:g}{u}, needs {self.needed:g}{u}"
            text += f" (short by {self.needed - self.limit:g})"
        else:
            text = self.constraint
        if self.detail:
            text += f" — {self.detail}"
        if self.workloads:
            shown = ", ".join(self.workloads[:5])
            more = f" (+{len(self.workloads) - 5} more)" if len(self.workloads) > 5 else ""
            text += f"; binds {shown}{more}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {**_finite(asdict(self)), "short_by": _finite(self.short_by)}


def build_allocation(p: Problem, out: Outcome) -> Allocation:
    """The :class:`Allocation` of a solved outcome (every workload of a class placed)."""
    assert out.v is not None and out.n is not None
    v: IntArray = out.v
    workloads: list[WorkloadAllocation | None] = [None] * len(p.workloads)
    for c in range(p.n_classes):
        lo, hi = np.searchsorted(p.pair_class, [c, c + 1])
        members = list(p.class_members[c])
        if len(members) == 1:  # one workload: every pair with steps is a share of it
            w = members[0]
            reps = {
                p.resources[int(p.pair_type[j])].name: int(v[j] * p.step[j])
                for j in range(lo, hi)
                if v[j] > 0
            }
            cover = {j: float(v[j] * p.cover[j]) for j in range(lo, hi) if v[j] > 0}
            workloads[w] = _workload(p, w, reps, cover)
            continue
        queue = iter(members)  # several alike: each step is one whole workload
        for j in range(lo, hi):
            for _ in range(int(v[j])):
                one = next(queue, None)
                if one is None:
                    break
                name = p.resources[int(p.pair_type[j])].name
                workloads[one] = _workload(p, one, {name: int(p.step[j])}, {j: 1.0})
    missing = [p.workloads[i].name for i, w in enumerate(workloads) if w is None]
    if missing:
        raise AssertionError(f"allocation leaves workloads unplaced: {missing[:5]}")
    load = p.loads(v.astype(np.float64))
    resources = []
    for t, r in enumerate(p.resources):
        units = int(out.n[t])
        if units == 0:
            continue
        used = {d: float(load[t, i]) for i, d in enumerate(DIMENSIONS)}
        resources.append(
            ResourceUsage(
                resource=r.name,
                units=units,
                available=r.available,
                cost_per_hour=round(units * r.cost_per_hour, 6),
                cpu_used=used["cpu"],
                cpu_capacity=units * r.cpu,
                memory_gb_used=used["memory_gb"],
                memory_gb_capacity=units * r.memory_gb,
                gpus_used=used["gpus"],
                gpus_capacity=float(units * r.gpus),
            )
        )
    _, cost, perf = p.objective(v.astype(np.float64), out.n.astype(np.float64))
    return Allocation(
        workloads=tuple(w for w in workloads if w is not None),
        resources=tuple(resources),
        cost_per_hour=cost,
        performance=perf,
        objective=out.objective,
        bound=out.bound,
        gap=out.gap,
        status=out.status,
        solver=out.method,
        seconds=out.seconds,
        lp_bound=out.lp_bound,
        cost_weight=p.cost_weight,
        performance_weight=p.performance_weight,
        budget_per_hour=p.budget,
        phases=tuple(out.phases),
    )


def _workload(
    p: Problem, w: int, replicas: dict[str, int], cover: dict[int, float]
) -> WorkloadAllocation:
    total = sum(cover.values()) or 1.0
    share = {p.resources[int(p.pair_type[j])].name: c / total for j, c in cover.items()}
    latency = sum(float(p.latency_ms[j]) * c / total for j, c in cover.items())
    head = sum(float(p.headroom[j]) * c / total for j, c in cover.items())
    return WorkloadAllocation(p.workloads[w].name, replicas, share, latency, head)
