"""GPU resources: NVML readings, memory-aware placement, scheduling, batching for local models.

On a machine without a GPU (or without NVML) everything reports one line,
``no GPU: <reason>; running on CPU``, and local models run on the CPU.
"""

from .manager import GPUAllocation, GPUResourceManager
from .memory import ConsolidationAdvice, GPUMemoryManager, GPUPlacement
from .monitor import GPUMonitor
from .nvml import NVML, FakeDevice, FakeNVML, GPUProcess, GPUReading, PyNVML
from .scheduler import GPUScheduler

__all__ = [
    "NVML",
    "ConsolidationAdvice",
    "FakeDevice",
    "FakeNVML",
    "GPUAllocation",
    "GPUMemoryManager",
    "GPUMonitor",
    "GPUPlacement",
    "GPUProcess",
    "GPUReading",
    "GPUResourceManager",
    "GPUScheduler",
    "PyNVML",
]
