"""What a node (an endpoint) is: its static description and its live readings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from ..errors import ConfigError

#: How a node can continue a stream another node broke off (its ``resume`` setting):
#: ``continue_final_message`` is vLLM's (and SGLang's) chat-completions extension that continues
#: a final assistant message instead of starting a new one.
RESUME_MODES: tuple[str, ...] = ("continue_final_message",)


class NodeState(StrEnum):
    """A node's administrative state. Draining nodes finish what they hold but get no new work."""

    ACTIVE = "active"
    DRAINING = "draining"


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """The static description of an endpoint.

    ``capabilities`` are free-form strings matched against a request's
    ``required_capabilities`` (e.g. ``"chat"``, ``"embeddings"``, ``"tools"``,
    ``"vision"``); every model in ``models`` adds ``"model:<name>"``. ``max_context`` of
    0 means unlimited. ``max_concurrency`` bounds in-flight requests, ``queue_size`` how many
    more may wait (0: none); a node with ``in_flight >= max_concurrency + queue_size`` is
    full. ``cost_per_1k_tokens`` feeds cost-aware decisions; ``weight`` feeds weighted
    round robin. ``url`` and ``api_key_env`` are used by HTTP upstreams; ``meta`` is free.
    HTTP nodes also take ``tls_verify`` (check the TLS certificate), ``ca_bundle`` (a PEM file
    of authorities to trust), ``max_connections`` (open connections to it at most; ``None``:
    no cap), ``connect_timeout`` and ``read_timeout`` (seconds without a byte while an answer
    is awaited; ``None``: the gateway's defaults).
    ``resume`` (``None``: off, the default for any provider not known to support it) names
    how the node can continue a chat stream another node broke off mid-way; one of
    :data:`RESUME_MODES`.
    ``metrics_url`` is where the node publishes Prometheus metrics (vLLM, TGI, the upstream
    simulator); ``None`` derives it from ``url`` (its origin + ``/metrics``), ``""`` means the
    node publishes none (it is scored from what this process sees of it).
    """

    id: str
    models: frozenset[str] = frozenset()
    capabilities: frozenset[str] = frozenset()
    max_context: int = 0
    max_concurrency: int = 64
    queue_size: int = 0
    cost_per_1k_tokens: float = 0.0
    weight: float = 1.0
    url: str | None = None
    api_key_env: str | None = None
    timeout: float | None = None
    tls_verify: bool = True
    ca_bundle: str | None = None
    max_connections: int | None = None
    connect_timeout: float | None = None
    read_timeout: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    metrics_url: str | None = None
    resume: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ConfigError("node.id", f"must be a non-empty string, got {self.id!r}")
        for name in ("models", "capabilities"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ConfigError(f"node[{self.id}].{name}", "must be a list of strings")
            if not isinstance(value, frozenset):
                object.__setattr__(self, name, frozenset(value))
        if self.max_concurrency < 1:
            raise ConfigError(
                f"node[{self.id}].max_concurrency", f"must be >= 1, got {self.max_concurrency}"
            )
        if self.queue_size < 0:
            raise ConfigError(f"node[{self.id}].queue_size", f"must be >= 0, got {self.queue_size}")
        if self.max_context < 0:
            raise ConfigError(
                f"node[{self.id}].max_context", f"must be >= 0, got {self.max_context}"
            )
        if self.cost_per_1k_tokens < 0:
            raise ConfigError(
                f"node[{self.id}].cost_per_1k_tokens",
                f"must be >= 0, got {self.cost_per_1k_tokens}",
            )
        if not self.weight > 0:
            raise ConfigError(f"node[{self.id}].weight", f"must be > 0, got {self.weight}")
        for name in ("timeout", "connect_timeout", "read_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"node[{self.id}].{name}", f"must be > 0, got {value}")
        if self.max_connections is not None and self.max_connections < 1:
            raise ConfigError(
                f"node[{self.id}].max_connections", f"must be >= 1, got {self.max_connections}"
            )
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigError(f"node[{self.id}].timeout", f"must be > 0, got {self.timeout}")
        if self.metrics_url and not self.metrics_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"node[{self.id}].metrics_url",
                f"must be an http(s) URL or empty, got {self.metrics_url!r}",
            )

        if self.resume is not None and self.resume not in RESUME_MODES:
            raise ConfigError(
                f"node[{self.id}].resume",
                f"must be one of {list(RESUME_MODES)} or unset, got {self.resume!r}",
            )

    @property
    def all_capabilities(self) -> frozenset[str]:
        """Explicit capabilities plus ``model:<name>`` for every served model."""
        return self.capabilities | frozenset(f"model:{m}" for m in self.models)

    @property
    def capacity(self) -> int:
        """Requests it can hold at once: running plus queued."""
        return self.max_concurrency + self.queue_size

    def with_changes(self, **changes: Any) -> NodeSpec:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class NodeMetrics:
    """A node's reported load: what it says of itself, each field ``None`` when not reported.

    ``cpu`` and ``memory`` are utilisation fractions in [0, 1] (for a model server: compute
    slots busy and KV-cache use; for a local worker: its process's cpu and memory);
    ``queue_depth`` is requests waiting on the node itself, ``running`` those it is working
    on (both as the node reports them, other clients' included); ``in_flight`` is what this
    process has sent it and not yet heard back from (the registry fills it in).
    """

    cpu: float | None = None
    memory: float | None = None
    queue_depth: int | None = None
    in_flight: int = 0
    running: int | None = None

    def __post_init__(self) -> None:
        for name in ("cpu", "memory"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"metrics.{name}", f"must be within [0, 1], got {value!r}")
        for name in ("queue_depth", "in_flight", "running"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"metrics.{name}", f"must be >= 0, got {value!r}")


def node_from_mapping(data: Mapping[str, Any]) -> NodeSpec:
    """Build a :class:`NodeSpec` from a plain mapping (a config file entry)."""
    known = set(NodeSpec.__dataclass_fields__)
    unknown = set(data) - known
    ident = data.get("id", "?")
    if unknown:
        raise ConfigError(
            f"node[{ident}]", f"unknown field(s) {sorted(unknown)}; allowed: {sorted(known)}"
        )
    values = dict(data)
    for name in ("models", "capabilities"):
        if name in values:
            raw = values[name]
            if isinstance(raw, str) or not isinstance(raw, Iterable):
                raise ConfigError(f"node[{ident}].{name}", "must be a list of strings")
            values[name] = frozenset(str(x) for x in raw)
    return NodeSpec(**values)
