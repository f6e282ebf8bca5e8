from ._manager import (
    GPUAllocation as GPUAllocation,
    GPUResourceManager as GPUResourceManager,
)
from ._memory import (
    ConsolidationAdvice as ConsolidationAdvice,
    GPUMemoryManager as GPUMemoryManager,
    GPUPlacement as GPUPlacement,
)
from ._monitor import GPUMonitor as GPUMonitor
from ._nvml import (
    NVML as NVML,
    FakeDevice as FakeDevice,
    FakeNVML as FakeNVML,
    GPUProcess as GPUProcess,
    GPUReading as GPUReading,
    PyNVML as PyNVML,
)
from ._requirements import (
    GPURequirements as GPURequirements,
    ModelFootprint as ModelFootprint,
)
from ._scheduler import GPUScheduler as GPUScheduler
