from ._batcher import DynamicBatcher as DynamicBatcher
from ._policy import (
    Flush as Flush,
)
from ._policy import (
    Reject as Reject,
)
from ._policy import (
    Wait as Wait,
)
from ._settings import BatcherSettings as BatcherSettings
from ._tuner import (
    BatchTuner as BatchTuner,
)
from ._tuner import (
    CurvePoint as CurvePoint,
)
