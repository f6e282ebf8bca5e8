from ._orchestrator import PerformanceOrchestrator as PerformanceOrchestrator
from ._retry import (
    RetryPolicy as RetryPolicy,
)
from ._retry import (
    RetryState as RetryState,
)
from ._retry import (
    Sleep as Sleep,
)
from ._retry import (
    Stop as Stop,
)
from ._retry import (
    TryNode as TryNode,
)
from ._settings import (
    CACHING_STRATEGIES as CACHING_STRATEGIES,
)
from ._settings import (
    OrchestratorSettings as OrchestratorSettings,
)
