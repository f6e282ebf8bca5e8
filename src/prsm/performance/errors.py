"""Every exception PRSM Performance raises, in one tree.

::

    PRSMError
    ├── ConfigError (ValueError)          a bad setting or config file: .field, .source
    ├── RequestValidationError (ValueError)  a malformed request: .field
    ├── DependencyMissingError (ImportError) an optional extra is not installed: .package, .extra
    ├── RoutingError
    │   ├── NoCapableNodesError           nothing can serve it: .required, .offered
    │   └── UnknownModelError             no node serves that model: .model, .available
    ├── CircuitBreakerOpenError           the breaker refuses: .node_id, .retry_after
    ├── DeadlineExceededError             the request's deadline passed: .deadline, .attempts
    ├── UpstreamError                     an endpoint failed: .node_id, .status, .retryable,
    │                                     .retry_after (its Retry-After, seconds)
    │   ├── UpstreamTimeoutError          it did not answer in time
    │   │   └── StreamTimeoutError        a stream missed a limit: .phase (first_token, idle,
    │   │                                 total), .seconds, .chunks
    │   ├── UpstreamUnavailableError      could not connect / connection dropped / 5xx, 429
    │   ├── MalformedStreamError          a stream sent an event that is not SSE of JSON:
    │   │                                 .chunks (events before it)
    │   └── UpstreamRejectedError         the node refused for its own reason (its credentials,
    │                                     a model or path it lacks, a redirect): 401/403/404/3xx
    ├── OverloadedError                   a bounded queue is full: .retry_after
    ├── RateLimitedError                  a tenant is over its limit: .tenant, .retry_after
    ├── AuthenticationError               missing or wrong API key
    ├── PermissionDeniedError             a known caller may not do this (the admin API)
    ├── PayloadTooLargeError              body over the configured size: .size, .limit
    ├── ConnectionFailed (ConnectionError)  the HTTP client's connection failed: .sent, .received
    ├── CacheError                        a cache tier failed (counted, skipped): .tier
    │   └── CacheIntegrityError           an entry failed its integrity check: .key
    ├── WorkerError                       a local model worker failed: .worker_id
    ├── HelperProcessError (RuntimeError)  a helper process (the optimiser's solver, the
    │                                     semantic cache's models) failed or died: .name
    ├── NoGPUError                        a GPU path was asked for on a machine without one
    ├── ScalingError                      a scaling backend refused or failed an action:
    │                                     .backend, .status (an HTTP status, where any)
    ├── AdminApiError                     a gateway's admin API could not be read (prsm-perf
    │                                     top): .url, .status (an HTTP status, where any)
    └── AllocationError                   the resource optimiser gives no allocation
        ├── InfeasibleAllocationError     no allocation meets every constraint: .conflicts
        │                                 (which constraints, by how much), .exact
        └── AllocationTimeoutError        none found within the time limit: .time_limit,
                                          .bound

Every error carries the context a caller needs to act on it, and ``str(err)`` says it in
one sentence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


class PRSMError(Exception):
    """Base of every error raised by :mod:`prsm.performance`."""


class ConfigError(PRSMError, ValueError):
    """A setting or a config file is wrong; names the field and, for files, the file."""

    def __init__(self, field: str, problem: str, *, source: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {problem}")


class RequestValidationError(PRSMError, ValueError):
    """A request is malformed; names the field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class DependencyMissingError(PRSMError, ImportError):
    """An optional dependency is not installed; says which extra brings it."""

    def __init__(self, package: str, extra: str, purpose: str, *, install: str | None = None):
        self.package = package
        self.extra = extra
        self.install = install or f"pip install 'prsm-performance[{extra}]'"
        super().__init__(
            f"{purpose} needs the package {package!r}, which is not installed: {self.install}"
        )


class RoutingError(PRSMError):
    """No node could be chosen for a request."""


class NoCapableNodesError(RoutingError):
    """No registered node can serve the request right now."""

    def __init__(
        self,
        required: Iterable[str],
        offered: Mapping[str, Iterable[str]],
        *,
        reason: str = "no node offers every required capability",
        excluded: Mapping[str, str] | None = None,
    ) -> None:
        self.required = frozenset(required)
        self.offered = {node: frozenset(caps) for node, caps in offered.items()}
        self.excluded = dict(excluded or {})
        self.reason = reason
        shown = ", ".join(
            f"{node}: [{', '.join(sorted(caps))}]" for node, caps in list(self.offered.items())[:8]
        )
        more = f" (+{len(self.offered) - 8} more)" if len(self.offered) > 8 else ""
        why = ""
        if self.excluded:
            why = "; excluded: " + ", ".join(
                f"{n} ({r})" for n, r in list(self.excluded.items())[:8]
            )
        super().__init__(
            f"{reason}: required [{', '.join(sorted(self.required))}]; "
            f"nodes offer {{{shown}}}{more}{why}"
        )


class UnknownModelError(RoutingError):
    """No node serves the requested model."""

    def __init__(self, model: str, available: Iterable[str]) -> None:
        self.model = model
        self.available = sorted(set(available))
        super().__init__(
            f"unknown model {model!r}; available models: {', '.join(self.available) or 'none'}"
        )


class CircuitBreakerOpenError(PRSMError):
    """A circuit breaker refused the call; ``retry_after`` is the time left in seconds."""

    def __init__(self, node_id: str, retry_after: float, *, state: str = "open") -> None:
        self.node_id = node_id
        self.retry_after = max(0.0, retry_after)
        self.state = state
        super().__init__(
            f"circuit breaker for {node_id!r} is {state}; retry in {self.retry_after:.3f}s"
        )


class DeadlineExceededError(PRSMError):
    """The request's deadline passed before any node answered."""

    def __init__(self, deadline: float, attempts: int, last_error: BaseException | None) -> None:
        self.deadline = deadline
        self.attempts = attempts
        self.last_error = last_error
        last = f"; last error: {last_error}" if last_error else ""
        super().__init__(f"deadline exceeded after {attempts} attempt(s){last}")


class UpstreamError(PRSMError):
    """An endpoint failed to serve a request."""

    def __init__(
        self,
        node_id: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = True,
        body: bytes | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.node_id = node_id
        self.status = status
        self.retryable = retryable
        self.body = body
        self.retry_after = retry_after  # seconds the node asked us to wait (its Retry-After)
        code = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"upstream {node_id!r} failed{code}: {message}")


class UpstreamTimeoutError(UpstreamError):
    """An endpoint did not answer within its timeout."""


class StreamTimeoutError(UpstreamTimeoutError):
    """A stream missed one of its limits.

    ``phase`` says which: ``first_token`` (no first chunk in time: the node is counted as
    failed and, nothing having been sent yet, the next node is tried), ``idle`` (the stream
    stalled between two chunks: counted against the node) or ``total`` (the stream ran past
    its optional total limit: the node was healthy, nothing is counted against it, and
    ``retryable`` is false). ``seconds`` is the limit that was missed, ``chunks`` how many
    chunks had arrived.
    """

    def __init__(self, node_id: str, phase: str, seconds: float, chunks: int, setting: str):
        self.phase = phase
        self.seconds = seconds
        self.chunks = chunks
        if phase == "first_token":
            what = f"no first chunk within {seconds:.3f}s"
        elif phase == "idle":
            what = f"stream stalled: no chunk for {seconds:.3f}s after {chunks} chunk(s)"
        else:
            what = f"stream cut after {chunks} chunk(s): it ran past its {seconds:.3f}s limit"
        super().__init__(node_id, f"{what} ({setting})", retryable=phase != "total")


class UpstreamUnavailableError(UpstreamError):
    """An endpoint could not be reached, dropped the connection, or answered 5xx or 429."""


class MalformedStreamError(UpstreamError):
    """A node's stream sent something that is not a server-sent event carrying JSON (nor
    ``[DONE]`` nor a comment): the node's failure. It never reaches the client; ``chunks`` is
    how many whole events came before it."""

    def __init__(self, node_id: str, chunks: int, event: bytes) -> None:
        self.chunks = chunks
        shown = event[:60].decode("utf-8", "replace")
        super().__init__(node_id, f"malformed stream event after {chunks} event(s): {shown!r}")


class UpstreamRejectedError(UpstreamError):
    """An endpoint refused the request for a reason of its own, not the client's: it did not
    accept our credentials (401, 403), lacks the model or path (404, 405, 410) or redirected
    (3xx). Counted against the node and retried on the next one; the node's answer is kept in
    ``body`` for operators and never shown to clients."""


class OverloadedError(PRSMError):
    """A bounded queue is full; the request was rejected at once."""

    def __init__(self, what: str, limit: int, *, retry_after: float = 1.0) -> None:
        self.what = what
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(f"{what} is overloaded: queue holds its limit of {limit}; retry later")


class RateLimitedError(PRSMError):
    """A tenant went over its request or token rate."""

    def __init__(self, tenant: str, limit: str, retry_after: float) -> None:
        self.tenant = tenant
        self.limit = limit
        self.retry_after = max(0.0, retry_after)
        super().__init__(
            f"tenant {tenant!r} is over its {limit} limit; retry in {self.retry_after:.3f}s"
        )


class AuthenticationError(PRSMError):
    """The API key is missing or wrong."""


class PermissionDeniedError(PRSMError):
    """The caller is known (or local) but may not do this, e.g. use the admin API."""


class PayloadTooLargeError(PRSMError):
    """The request body is larger than allowed."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"request body of {size} bytes exceeds the limit of {limit} bytes")


class ConnectionFailed(PRSMError, ConnectionError):
    """The HTTP client's connection failed or closed. ``sent``: the request had been written
    (the server may have acted on it, so it is not sent again); ``received``: part of an
    answer had come."""

    def __init__(self, message: str, *, received: bool, sent: bool = True) -> None:
        super().__init__(message)
        self.received = received
        self.sent = sent


class CacheError(PRSMError):
    """A cache tier failed; the caller skips it and counts it."""

    def __init__(self, tier: str, message: str) -> None:
        self.tier = tier
        super().__init__(f"cache tier {tier!r}: {message}")


class CacheIntegrityError(CacheError):
    """A cached entry failed its integrity check and is treated as a miss."""

    def __init__(self, tier: str, key: str, message: str) -> None:
        self.key = key
        super().__init__(tier, f"entry {key!r}: {message}")


class WorkerError(PRSMError):
    """A local model worker failed or died."""

    def __init__(self, worker_id: str, message: str) -> None:
        self.worker_id = worker_id
        super().__init__(f"worker {worker_id!r}: {message}")


class HelperProcessError(PRSMError, RuntimeError):
    """A helper process (the optimiser's solver, the semantic cache's models) failed or died."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"helper process {name!r}: {message}")


class NoGPUError(PRSMError):
    """A GPU was asked for on a machine that has none (or no NVML)."""


class ScalingError(PRSMError):
    """A scaling backend (local processes, Ray, Kubernetes) failed to carry out an action;
    the controller retries it and reports the outcome."""

    def __init__(self, backend: str, message: str, *, status: int | None = None) -> None:
        self.backend = backend
        self.status = status
        code = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"scaling backend {backend!r}{code}: {message}")


class AdminApiError(PRSMError):
    """A gateway's admin API could not be read (unreachable, refused the key, or not
    monitoring): ``prsm-perf top`` says so and exits."""

    def __init__(self, url: str, message: str, *, status: int | None = None) -> None:
        self.url = url
        self.status = status
        code = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{url}{code}: {message}")


class AllocationError(PRSMError):
    """The resource optimiser could not give an allocation."""


class InfeasibleAllocationError(AllocationError):
    """No allocation meets every constraint. ``conflicts`` are the constraints that must give
    way and by how much (each one's ``str()`` says it); ``exact``: the amounts are the least
    that would do (else lower bounds from the LP relaxation)."""

    def __init__(self, conflicts: Sequence[object], *, exact: bool = True) -> None:
        self.conflicts = tuple(conflicts)
        self.exact = exact
        shown = "; ".join(str(c) for c in self.conflicts[:6])
        more = f"; (+{len(self.conflicts) - 6} more)" if len(self.conflicts) > 6 else ""
        note = "" if exact else " (amounts are lower bounds from the LP relaxation)"
        super().__init__(f"no allocation meets every constraint{note}: {shown}{more}")


class AllocationTimeoutError(AllocationError):
    """The time limit passed before any allocation was found (infeasibility not proven);
    ``bound`` is the best bound on the objective proven meanwhile."""

    def __init__(self, time_limit: float, bound: float) -> None:
        self.time_limit = time_limit
        self.bound = bound
        super().__init__(
            f"no allocation found within the time limit of {time_limit:g}s "
            f"(nor proven infeasible); raise optimize.time_limit"
        )
