from ._orchestrator import PerformanceOrchestrator as PerformanceOrchestrator
from ._settings import (
    CACHING_STRATEGIES as CACHING_STRATEGIES,
)
from ._settings import (
    OrchestratorSettings as OrchestratorSettings,
)
