"""Dynamic batching: a pure batching policy, a batch-size tuner, and the async batcher.

The policy's functions (:func:`.policy.admit`, :func:`.policy.decide`) and snapshots, and
the tuner's :func:`.tuner.best_batch_size`, are importable from their modules.
"""

from .batcher import DynamicBatcher
from .policy import Flush, Reject, Wait
from .settings import BatcherSettings
from .tuner import BatchTuner, CurvePoint

__all__ = [
    "BatchTuner",
    "BatcherSettings",
    "CurvePoint",
    "DynamicBatcher",
    "Flush",
    "Reject",
    "Wait",
]
