from ._io import (
    AllocationInput as AllocationInput,
    load_allocation_file as load_allocation_file,
)
from ._model import (
    KindPerformance as KindPerformance,
    ResourceType as ResourceType,
    WorkloadProfile as WorkloadProfile,
)
from ._optimizer import (
    ConstraintSolver as ConstraintSolver,
    CostConstraints as CostConstraints,
    CostOptimizer as CostOptimizer,
    ReplicaPlan as ReplicaPlan,
    ResourceOptimizer as ResourceOptimizer,
    WorkloadProfiler as WorkloadProfiler,
)
from ._result import (
    Allocation as Allocation,
    Conflict as Conflict,
    ResourceUsage as ResourceUsage,
    WorkloadAllocation as WorkloadAllocation,
)
from ._settings import OptimizerSettings as OptimizerSettings
