from ._app import (
    GatewayApp as GatewayApp,
)
from ._app import (
    create_app as create_app,
)
from ._ratelimit import (
    MemoryRateLimitStore as MemoryRateLimitStore,
)
from ._ratelimit import (
    RateLimitStore as RateLimitStore,
)
from ._ratelimit import (
    RedisRateLimitStore as RedisRateLimitStore,
)
from ._settings import (
    GatewaySettings as GatewaySettings,
)
from ._settings import (
    TenantSettings as TenantSettings,
)
