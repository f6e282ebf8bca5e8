from ._build import (
    app_from_config as app_from_config,
    build_orchestrator as build_orchestrator,
)
from ._pool_client import SharedPoolUpstream as SharedPoolUpstream
from ._shared_pool import PoolHost as PoolHost
