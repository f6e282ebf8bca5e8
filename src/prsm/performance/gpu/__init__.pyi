from ._manager import (
    GPUAllocation as GPUAllocation,
)
from ._manager import (
    GPUResourceManager as GPUResourceManager,
)
from ._memory import (
    ConsolidationAdvice as ConsolidationAdvice,
)
from ._memory import (
    GPUMemoryManager as GPUMemoryManager,
)
from ._memory import (
    GPUPlacement as GPUPlacement,
)
from ._monitor import GPUMonitor as GPUMonitor
from ._nvml import (
    NVML as NVML,
)
from ._nvml import (
    FakeDevice as FakeDevice,
)
from ._nvml import (
    FakeNVML as FakeNVML,
)
from ._nvml import (
    GPUProcess as GPUProcess,
)
from ._nvml import (
    GPUReading as GPUReading,
)
from ._nvml import (
    PyNVML as PyNVML,
)
from ._scheduler import GPUScheduler as GPUScheduler
