from ._hedge import (
    Hedge as Hedge,
    HedgePolicy as HedgePolicy,
    NoHedge as NoHedge,
)
from ._orchestrator import PerformanceOrchestrator as PerformanceOrchestrator
from ._retry import (
    RetryPolicy as RetryPolicy,
    RetryState as RetryState,
    Sleep as Sleep,
    Stop as Stop,
    TryNode as TryNode,
)
from ._settings import (
    CACHING_STRATEGIES as CACHING_STRATEGIES,
    OrchestratorSettings as OrchestratorSettings,
)
