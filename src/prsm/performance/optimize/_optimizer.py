"""The source post's ``ResourceOptimizer`` and its parts, made real.

* :class:`WorkloadProfiler` turns what it is given (a :class:`WorkloadProfile`, a mapping from
  a file) into a validated profile;
* :class:`CostOptimizer` is the objective: ``minimize_cost_maximize_performance``;
* :class:`ConstraintSolver` compiles capacity, SLA and budget constraints into the MILP,
  solves it in a worker process within its time limit, and explains an infeasible one;
* :class:`ResourceOptimizer` ties them together: :meth:`~ResourceOptimizer.optimize_allocation`
  (workloads × resource types) and :meth:`~ResourceOptimizer.optimize` (replicas for a
  predicted load, for the auto-scaler).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..errors import AllocationTimeoutError, ConfigError, InfeasibleAllocationError
from ._explain import elastic_conflicts, structural_conflicts
from ._model import ResourceType, WorkloadProfile, check_names, workload_from_mapping
from ._problem import Problem, compile_problem
from ._result import Allocation, Conflict, build_allocation
from ._settings import OptimizerSettings
from ._solve import Event, Outcome, SolveOptions, solve
from ._worker import SolverWorker

ProgressCallback = Callable[[Event], None]


class WorkloadProfiler:
    """Builds :class:`WorkloadProfile` objects from what a caller has.

    A profile passes through; a mapping (a file's entry) is validated field by field
    (:class:`~prsm.performance.errors.ConfigError` names the bad one).
    """

    async def profile(self, workload: WorkloadProfile | Mapping[str, Any]) -> WorkloadProfile:
        """The profile of one workload."""
        if isinstance(workload, WorkloadProfile):
            return workload
        if isinstance(workload, Mapping):
            return workload_from_mapping(workload, f"workloads[{workload.get('name', '?')}]")
        raise ConfigError(
            "workloads", f"a workload must be a WorkloadProfile or a mapping, got {workload!r}"
        )

    async def profile_all(
        self, workloads: Iterable[WorkloadProfile | Mapping[str, Any]]
    ) -> list[WorkloadProfile]:
        return [await self.profile(w) for w in workloads]


class CostOptimizer:
    """The objective: ``-cost_weight × cost + performance_weight × performance`` (the post's
    ``minimize_cost_maximize_performance``, ``-total_cost + 2 * total_performance``)."""

    def __init__(self, cost_weight: float = 1.0, performance_weight: float = 2.0) -> None:
        self.cost_weight = cost_weight
        self.performance_weight = performance_weight

    def cost(self, allocation: Allocation) -> float:
        """$/hour of the units the allocation uses."""
        return sum(r.cost_per_hour for r in allocation.resources)

    def performance(self, allocation: Allocation) -> float:
        """Priority-weighted SLO headroom summed over the workloads."""
        return allocation.performance

    def objective(self, allocation: Allocation) -> float:
        return -self.cost_weight * self.cost(
            allocation
        ) + self.performance_weight * self.performance(allocation)


class ConstraintSolver:
    """Capacity, SLA and budget constraints as a MILP, solved in a worker process.

    :meth:`solve` returns an :class:`Allocation` or raises
    :class:`~prsm.performance.errors.InfeasibleAllocationError` (with the conflicts) or
    :class:`~prsm.performance.errors.AllocationTimeoutError`. Call :meth:`aclose` (or use the
    optimiser as an async context manager) to stop the worker process.
    """

    def __init__(self, settings: OptimizerSettings | None = None) -> None:
        self.settings = settings or OptimizerSettings()
        self._worker = SolverWorker(grace=self.settings.grace)

    def options(self) -> SolveOptions:
        s = self.settings
        return SolveOptions(s.time_limit, s.target_gap, s.solver, s.heuristics, s.threads)

    async def solve(
        self, problem: Problem, on_progress: ProgressCallback | None = None
    ) -> Allocation:
        conflicts = structural_conflicts(problem)
        if conflicts:
            raise InfeasibleAllocationError(conflicts, exact=True)
        opts = self.options()
        if self.settings.in_process:
            out: Outcome = solve(problem, opts, report=on_progress)
        else:
            out = await self._worker.solve(problem, opts, on_progress)
        if out.status == "infeasible":
            found, exact = await self.explain(problem)
            raise InfeasibleAllocationError(found, exact=exact)
        if out.v is None:
            raise AllocationTimeoutError(self.settings.time_limit, out.bound)
        return build_allocation(problem, out)

    async def explain(self, problem: Problem) -> tuple[list[Conflict], bool]:
        """The conflicts that make ``problem`` infeasible, and whether the amounts are exact."""
        found = structural_conflicts(problem)
        if found:
            return found, True
        limit = self.settings.time_limit
        if self.settings.in_process:
            return elastic_conflicts(problem, time_limit=limit)
        try:
            result: tuple[list[Conflict], bool] = await self._worker.call(
                elastic_conflicts_call, (problem, limit), limit
            )
        except TimeoutError:  # the exact stretch ran too long: the LP's, in a thread
            return await asyncio.to_thread(elastic_conflicts, problem, time_limit=0.0)
        return result

    async def start(self) -> None:
        """Start the worker process now (else the first solve pays for its start-up)."""
        if not self.settings.in_process:
            await self._worker.start()

    async def aclose(self) -> None:
        self._worker.close()


def elastic_conflicts_call(problem: Problem, time_limit: float) -> tuple[list[Conflict], bool]:
    """:func:`elastic_conflicts` with positional arguments (what the worker calls)."""
    return elastic_conflicts(problem, time_limit=time_limit)


@dataclasses.dataclass(frozen=True, slots=True)
class CostConstraints:
    """Cost limits for :meth:`ResourceOptimizer.optimize`: ``max_cost_per_hour`` ($/h,
    ``None``: none) and ``min_replicas`` each service keeps."""

    max_cost_per_hour: float | None = None
    min_replicas: int = 1

    def __post_init__(self) -> None:
        if self.max_cost_per_hour is not None and not self.max_cost_per_hour > 0:
            raise ConfigError("max_cost_per_hour", f"must be > 0, got {self.max_cost_per_hour!r}")
        if isinstance(self.min_replicas, bool) or not isinstance(self.min_replicas, int):
            raise ConfigError("min_replicas", f"must be an integer, got {self.min_replicas!r}")
        if self.min_replicas < 0:
            raise ConfigError("min_replicas", f"must be >= 0, got {self.min_replicas!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class ReplicaPlan:
    """What :meth:`ResourceOptimizer.optimize` returns to the auto-scaler.

    ``replicas``: replicas per resource type (all services); ``by_service``: the same per
    service; ``units``: units of each type to run them on; ``estimated_cost``: $/h of those
    units (the post's ``optimal_resources.estimated_cost``); ``load``: the requests/s each
    service was sized for (the larger of current and predicted); ``capacity``: the
    requests/s its replicas sustain; ``allocation``: the full answer.
    """

    replicas: Mapping[str, int]
    by_service: Mapping[str, Mapping[str, int]]
    units: Mapping[str, int]
    estimated_cost: float
    load: Mapping[str, float]
    capacity: Mapping[str, float]
    allocation: Allocation


class ResourceOptimizer:
    """The source post's resource optimiser (see the module docstring).

    ``resources`` and ``services`` are what :meth:`optimize` plans for (the resource types
    one may rent and the services to scale, as profiles whose ``requests_per_second`` it
    replaces by the load); :meth:`optimize_allocation` takes its inputs as arguments.
    """

    def __init__(
        self,
        settings: OptimizerSettings | None = None,
        *,
        resources: Sequence[ResourceType] = (),
        services: Sequence[WorkloadProfile] = (),
    ) -> None:
        self.settings = settings or OptimizerSettings()
        self.resources = tuple(resources)
        self.services = tuple(services)
        self.workload_profiler = WorkloadProfiler()
        self.cost_optimizer = CostOptimizer(
            self.settings.cost_weight, self.settings.performance_weight
        )
        self.constraint_solver = ConstraintSolver(self.settings)

    async def __aenter__(self) -> ResourceOptimizer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start the solver's worker process ahead of the first solve."""
        await self.constraint_solver.start()

    async def aclose(self) -> None:
        """Stop the solver's worker process."""
        await self.constraint_solver.aclose()

    def problem(
        self,
        workloads: Sequence[WorkloadProfile],
        resources: Sequence[ResourceType],
        *,
        budget_per_hour: float | None = None,
    ) -> Problem:
        """The compiled model (checks names; ``budget_per_hour`` overrides the setting's)."""
        ws, rs = check_names(workloads, resources)
        s = self.settings
        budget = budget_per_hour if budget_per_hour is not None else s.budget_per_hour
        if budget is not None and not budget > 0:
            raise ConfigError("budget_per_hour", f"must be > 0, got {budget!r}")
        return compile_problem(
            ws,
            rs,
            budget=budget,
            cost_weight=s.cost_weight,
            performance_weight=s.performance_weight,
            split_workloads=s.split_workloads,
        )

    async def optimize_allocation(
        self,
        workloads: Iterable[WorkloadProfile | Mapping[str, Any]],
        available_resources: Iterable[ResourceType] | None = None,
        *,
        budget_per_hour: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Allocation:
        """How many units of each resource type to use and where each workload runs.

        Raises :class:`~prsm.performance.errors.InfeasibleAllocationError` (the conflicting
        constraints and by how much) or :class:`~prsm.performance.errors.AllocationTimeoutError`.
        """
        profiles = await self.workload_profiler.profile_all(workloads)
        resources = self.resources if available_resources is None else tuple(available_resources)
        problem = self.problem(profiles, resources, budget_per_hour=budget_per_hour)
        return await self.constraint_solver.solve(problem, on_progress)

    def minimize_cost_maximize_performance(self, allocation: Allocation) -> float:
        """The post's objective of an allocation (``-total_cost + 2 * total_performance``
        with the default weights)."""
        return self.cost_optimizer.objective(allocation)

    async def optimize(
        self,
        current_load: float | Mapping[str, float],
        predicted_load: float | Mapping[str, float],
        cost_constraints: CostConstraints | Mapping[str, Any] | float | None = None,
    ) -> ReplicaPlan:
        """Replicas per resource type for each service, sized for the larger of its current
        and predicted load (requests/s: one number when there is one service, else a mapping
        by service name), within ``cost_constraints`` (a :class:`CostConstraints`, a mapping
        of its fields, or just the most it may cost per hour). Same model and solver as
        :meth:`optimize_allocation`; raises its errors."""
        if not self.services or not self.resources:
            raise ConfigError(
                "services",
                "optimize() needs ResourceOptimizer(services=[...], resources=[...])",
            )
        limits = _cost_constraints(cost_constraints)
        current, predicted = (
            _loads(current_load, self.services),
            _loads(predicted_load, self.services),
        )
        sized = {s.name: max(current[s.name], predicted[s.name]) for s in self.services}
        services = [
            dataclasses.replace(
                s,
                requests_per_second=sized[s.name],
                min_replicas=max(s.min_replicas, limits.min_replicas),
            )
            for s in self.services
        ]
        allocation = await self.optimize_allocation(
            services, self.resources, budget_per_hour=limits.max_cost_per_hour
        )
        return _plan(allocation, self.resources, services, sized)


def _cost_constraints(value: CostConstraints | Mapping[str, Any] | float | None) -> CostConstraints:
    if value is None:
        return CostConstraints()
    if isinstance(value, CostConstraints):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"max_cost_per_hour", "min_replicas"}
        if unknown:
            raise ConfigError(
                f"cost_constraints.{sorted(unknown)[0]}",
                "unknown field; allowed: max_cost_per_hour, min_replicas",
            )
        return CostConstraints(**value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return CostConstraints(max_cost_per_hour=float(value))
    raise ConfigError(
        "cost_constraints", f"must be CostConstraints, a mapping or $/h, got {value!r}"
    )


def _loads(
    value: float | Mapping[str, float], services: Sequence[WorkloadProfile]
) -> dict[str, float]:
    names = [s.name for s in services]
    if isinstance(value, Mapping):
        missing = [n for n in names if n not in value]
        if missing:
            raise ConfigError("load", f"no load given for service {missing[0]!r}")
        out = {n: value[n] for n in names}
    elif len(names) == 1 and isinstance(value, (int, float)) and not isinstance(value, bool):
        out = {names[0]: value}
    else:
        raise ConfigError("load", "give a mapping of requests/s by service name")
    for n, x in out.items():
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not x >= 0:
            raise ConfigError(f"load.{n}", f"must be requests/s >= 0, got {x!r}")
    return {n: float(x) for n, x in out.items()}


def _plan(
    allocation: Allocation,
    resources: Sequence[ResourceType],
    services: Sequence[WorkloadProfile],
    sized: Mapping[str, float],
) -> ReplicaPlan:
    by_type = {r.name: r for r in resources}
    replicas: dict[str, int] = {}
    by_service: dict[str, dict[str, int]] = {}
    capacity: dict[str, float] = {}
    kinds = {s.name: s.kind for s in services}
    for w in allocation.workloads:
        by_service[w.workload] = dict(w.replicas)
        cap = 0.0
        for t, k in w.replicas.items():
            replicas[t] = replicas.get(t, 0) + k
            cap += k * by_type[t].performance[kinds[w.workload]].throughput
        capacity[w.workload] = cap
    return ReplicaPlan(
        replicas=replicas,
        by_service=by_service,
        units=allocation.units,
        estimated_cost=allocation.cost_per_hour,
        load=dict(sized),
        capacity=capacity,
        allocation=allocation,
    )
