"""The label values a recorded request carries: its operation, its cache result, what it
failed with (:func:`classify_error`), and the bound on distinct values of a label
(:class:`BoundedLabel`, past which a value becomes :data:`OTHER`).
"""

from __future__ import annotations

from ..errors import (
    CircuitBreakerOpenError,
    DeadlineExceededError,
    NoCapableNodesError,
    OverloadedError,
    PRSMError,
    RateLimitedError,
    RequestValidationError,
    UnknownModelError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

#: ``gen_ai.operation.name`` of each request kind (the gateway's ``RequestKind`` values).
OPERATIONS = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings"}

#: What a cache look-up can find (``prsm_cache_lookups_total{result}``): a tier or a miss.
CACHE_RESULTS = frozenset({"miss", "l1", "l2", "l3", "memory", "disk", "redis", "semantic"})

#: The label value that stands for every value past ``label_limit``.
OTHER = "_OTHER"


def classify_error(exc: BaseException) -> str:
    """A low-cardinality name of what a request failed with (OpenTelemetry's ``error.type``):
    the upstream's HTTP status when it gave one, else the kind of failure."""
    if isinstance(exc, UpstreamTimeoutError):
        return "timeout"
    if isinstance(exc, UpstreamUnavailableError):
        return "unavailable"
    if isinstance(exc, UpstreamError):
        status = exc.status
        return str(status) if isinstance(status, int) and 100 <= status <= 599 else "upstream"
    kinds: tuple[tuple[type[PRSMError], str], ...] = (
        (DeadlineExceededError, "deadline"),
        (CircuitBreakerOpenError, "breaker_open"),
        (UnknownModelError, "unknown_model"),
        (NoCapableNodesError, "no_capable_nodes"),
        (RateLimitedError, "rate_limited"),
        (OverloadedError, "overloaded"),
        (RequestValidationError, "invalid_request"),
    )
    for kind, name in kinds:
        if isinstance(exc, kind):
            return name
    return OTHER


class BoundedLabel:
    """Admits at most ``limit`` distinct values of one label; later ones become ``_OTHER``."""

    __slots__ = ("limit", "seen")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        seen = self.seen
        if value in seen:
            return value
        if len(seen) >= self.limit:
            return OTHER
        seen.add(value)
        return value
