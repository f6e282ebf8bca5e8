"""GPU resources: NVML readings, memory-aware placement, scheduling, batching for local models.

On a machine without a GPU (or without NVML) everything reports one line,
``no GPU: <reason>; running on CPU``, and local models run on the CPU.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
