"""Resource allocation: workloads × resource types as a mixed-integer program, solved for real.

:class:`ResourceOptimizer` (the source post's) decides how many units of each resource type
to rent and where each workload runs, under capacity, latency-SLO and budget constraints,
maximising ``-cost + 2 × performance`` (weights configurable). An LP relaxation with rounding
and repair gives a good answer and a proven bound at once; HiGHS then closes the gap in a
worker process within a time limit. Infeasible inputs raise
:class:`~prsm.performance.errors.InfeasibleAllocationError` naming the conflicting constraints
and by how much they conflict.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
