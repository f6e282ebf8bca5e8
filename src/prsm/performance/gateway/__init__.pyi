from ._admin import (
    NodeKeyPolicy as NodeKeyPolicy,
    validate_node as validate_node,
)
from ._app import (
    GatewayApp as GatewayApp,
    create_app as create_app,
)
from ._ratelimit import (
    MemoryRateLimitStore as MemoryRateLimitStore,
    RateLimitStore as RateLimitStore,
    RedisRateLimitStore as RedisRateLimitStore,
)
from ._settings import (
    GatewaySettings as GatewaySettings,
    NodeKeySettings as NodeKeySettings,
    TenantSettings as TenantSettings,
)
