from ._orchestrator import PerformanceOrchestrator as PerformanceOrchestrator
from ._settings import (
    CACHING_STRATEGIES as CACHING_STRATEGIES,
    OrchestratorSettings as OrchestratorSettings,
)
