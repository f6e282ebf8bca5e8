"""PRSM Performance: the performance layer for AI serving.

Everything a user needs is importable from here; ``__all__`` lists it (a test keeps it
complete). Submodules are implementation detail.
"""

from .clock import Clock, ManualClock, SystemClock
from .config import PRSMConfig, load_config
from .errors import (
    AuthenticationError,
    CacheError,
    CacheIntegrityError,
    CircuitBreakerOpenError,
    ConfigError,
    DeadlineExceededError,
    DependencyMissingError,
    NoCapableNodesError,
    NoGPUError,
    OverloadedError,
    PayloadTooLargeError,
    PRSMError,
    RateLimitedError,
    RequestValidationError,
    RoutingError,
    UnknownModelError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    WorkerError,
)
from .monitoring import MetricsRegistry
from .routing.node import NodeMetrics, NodeSpec, NodeState
from .types import AIRequest, ExecutionResult, RequestKind, Response
from .upstreams import CallableUpstream, StreamingUpstream, Upstream

__version__ = "0.1.0"

__all__ = [
    "AIRequest",
    "AuthenticationError",
    "CacheError",
    "CacheIntegrityError",
    "CallableUpstream",
    "CircuitBreakerOpenError",
    "Clock",
    "ConfigError",
    "DeadlineExceededError",
    "DependencyMissingError",
    "ExecutionResult",
    "ManualClock",
    "MetricsRegistry",
    "NoCapableNodesError",
    "NoGPUError",
    "NodeMetrics",
    "NodeSpec",
    "NodeState",
    "OverloadedError",
    "PRSMConfig",
    "PRSMError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "RequestKind",
    "RequestValidationError",
    "Response",
    "RoutingError",
    "StreamingUpstream",
    "SystemClock",
    "UnknownModelError",
    "Upstream",
    "UpstreamError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "WorkerError",
    "__version__",
    "load_config",
]
