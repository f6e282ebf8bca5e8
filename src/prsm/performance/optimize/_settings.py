"""Settings of the resource optimiser (config section ``optimize``; imports only ``errors``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError

SOLVERS: tuple[str, ...] = ("highs", "cp-sat", "scipy", "none")


def _number(name: str, value: object, *, low: float, low_ok: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(name, f"must be a finite number, got {value!r}")
    if value < low or (value == low and not low_ok):
        bound = f">= {low:g}" if low_ok else f"> {low:g}"
        raise ConfigError(name, f"must be {bound}, got {value!r}")


@dataclass(frozen=True, slots=True)
class OptimizerSettings:
    """How :class:`~prsm.performance.optimize.ResourceOptimizer` weighs and solves.

    The objective is the source post's ``minimize_cost_maximize_performance``:
    ``-cost_weight × cost ($/h) + performance_weight × performance``, performance being the
    sum over workloads of priority × SLO headroom (``1 - latency / SLO``, share-weighted).
    With the defaults (1 and 2, the post's ``-total_cost + 2 * total_performance``), a
    priority-1 workload moving from a placement at its SLO to one at half of it is worth
    $1/h.

    ``budget_per_hour``: the most the allocation may cost ($/h; ``None``: no limit).
    ``time_limit``: seconds a solve may take; ``target_gap``: the relative optimality gap at
    which it stops early (0.01 = proven within 1 % of the best possible).
    ``solver``: the exact solver run after the LP bound and heuristics when the gap is still
    above the target: ``highs`` (HiGHS through ``highspy``), ``cp-sat`` (OR-Tools, the
    ``optimize`` extra), ``scipy`` (``scipy.optimize.milp``: no warm start) or ``none``.
    ``heuristics``: run greedy, LP rounding and LP diving first (off: the exact solver alone).
    ``split_workloads``: a workload may spread its replicas over several resource types
    (off: each workload runs on exactly one type).
    ``threads``: solver threads (``None``: the solver's default).
    ``in_process``: solve in this process (blocks the event loop; for tests and debugging)
    instead of the worker process; ``grace``: seconds past ``time_limit`` before a worker
    that has not answered is stopped and its best reported answer used.
    """

    cost_weight: float = 1.0
    performance_weight: float = 2.0
    budget_per_hour: float | None = None
    time_limit: float = 10.0
    target_gap: float = 0.01
    solver: Literal["highs", "cp-sat", "scipy", "none"] = "highs"
    heuristics: bool = True
    split_workloads: bool = True
    threads: int | None = None
    in_process: bool = False
    grace: float = 2.0

    def __post_init__(self) -> None:
        _number("cost_weight", self.cost_weight, low=0.0)
        _number("performance_weight", self.performance_weight, low=0.0)
        if self.cost_weight == 0 and self.performance_weight == 0:
            raise ConfigError("cost_weight", "cost_weight and performance_weight are both 0")
        if self.budget_per_hour is not None:
            _number("budget_per_hour", self.budget_per_hour, low=0.0, low_ok=False)
        _number("time_limit", self.time_limit, low=0.0, low_ok=False)
        _number("target_gap", self.target_gap, low=0.0)
        if self.solver not in SOLVERS:
            raise ConfigError("solver", f"must be one of {list(SOLVERS)}, got {self.solver!r}")
        if not isinstance(self.heuristics, bool):
            raise ConfigError("heuristics", f"must be true or false, got {self.heuristics!r}")
        if not self.heuristics and self.solver == "none":
            raise ConfigError("solver", "must name a solver when heuristics are off")
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            raise ConfigError("threads", f"must be an integer >= 1, got {self.threads!r}")
        _number("grace", self.grace, low=0.0)
