from ._batcher import DynamicBatcher as DynamicBatcher
from ._policy import (
    Flush as Flush,
    Reject as Reject,
    Wait as Wait,
)
from ._settings import BatcherSettings as BatcherSettings
from ._tuner import (
    BatchTuner as BatchTuner,
    CurvePoint as CurvePoint,
)
