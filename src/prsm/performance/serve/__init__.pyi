from ._build import (
    app_from_config as app_from_config,
)
from ._build import (
    build_orchestrator as build_orchestrator,
)
