"""Settings of the upstream simulator: latency, streaming pace, errors, models (all run-time
changeable through its control endpoint)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..http._settings import HttpServerSettings

DISTRIBUTIONS = ("fixed", "normal", "lognormal")
ERROR_KINDS = ("500", "429", "timeout", "drop", "truncate")


@dataclass(frozen=True, slots=True)
class SimSettings:
    """How the simulated OpenAI-compatible server behaves.

    ``latency`` is the mean time (seconds) before a non-streamed answer, drawn from
    ``distribution`` (``fixed``, ``normal`` with ``latency_std``, or ``lognormal`` whose
    mean is ``latency`` and standard deviation ``latency_std``). A stream waits
    ``ttft`` before its first token and then sends ``tokens_per_second`` tokens (0: as fast
    as it can). ``error_rate`` of the requests fail with a kind drawn uniformly from
    ``error_kinds``: ``500``, ``429`` (with ``Retry-After``), ``timeout`` (the server never
    answers), ``drop`` (it closes the connection) or ``truncate`` (it sends the head and half
    of the answer or stream, then closes the connection). ``completion_tokens`` is how many
    tokens an answer has when the request gives no ``max_tokens``. ``api_key``, when set,
    must come as ``Authorization: Bearer <key>``. ``name`` marks every answer
    (``system_fingerprint``) so tests can see which server answered.
    """

    host: str = "127.0.0.1"
    port: int = 8100
    name: str = "sim"
    models: tuple[str, ...] = ("sim-chat", "sim-embed")
    distribution: str = "fixed"
    latency: float = 0.0
    latency_std: float = 0.0
    ttft: float = 0.0
    tokens_per_second: float = 0.0
    completion_tokens: int = 16
    max_stream_tokens: int = 4096
    embedding_dim: int = 384
    error_rate: float = 0.0
    error_kinds: tuple[str, ...] = ("500",)
    api_key: str | None = None
    seed: int = 0
    http: HttpServerSettings = field(default_factory=HttpServerSettings)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("port", f"must be within [0, 65535], got {self.port}")
        if self.distribution not in DISTRIBUTIONS:
            raise ConfigError(
                "distribution", f"must be one of {list(DISTRIBUTIONS)}, got {self.distribution!r}"
            )
        for name in ("latency", "latency_std", "ttft", "tokens_per_second"):
            value = getattr(self, name)
            if not value >= 0:
                raise ConfigError(name, f"must be >= 0 seconds, got {value!r}")
        if self.distribution == "lognormal" and self.latency_std > 0 and self.latency <= 0:
            raise ConfigError("latency", "must be > 0 for a lognormal distribution with a spread")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ConfigError("error_rate", f"must be within [0, 1], got {self.error_rate!r}")
        if isinstance(self.error_kinds, str):
            object.__setattr__(self, "error_kinds", (self.error_kinds,))
        kinds = tuple(str(k) for k in self.error_kinds)
        object.__setattr__(self, "error_kinds", kinds)
        bad = [k for k in kinds if k not in ERROR_KINDS]
        if bad or not kinds:
            raise ConfigError(
                "error_kinds", f"must be a non-empty list of {list(ERROR_KINDS)}, got {list(kinds)}"
            )
        if isinstance(self.models, str) or not self.models:
            raise ConfigError("models", "must be a non-empty list of model names")
        object.__setattr__(self, "models", tuple(str(m) for m in self.models))
        if self.completion_tokens < 1:
            raise ConfigError("completion_tokens", f"must be >= 1, got {self.completion_tokens}")
        if self.max_stream_tokens < 1:
            raise ConfigError("max_stream_tokens", f"must be >= 1, got {self.max_stream_tokens}")
        if self.embedding_dim < 1:
            raise ConfigError("embedding_dim", f"must be >= 1, got {self.embedding_dim}")

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-able values (the API key is never shown)."""
        out = dataclasses.asdict(self)
        out["api_key"] = "***" if self.api_key else None
        out["models"] = list(self.models)
        out["error_kinds"] = list(self.error_kinds)
        return out


#: settings the control endpoint may change at run time
CONTROLLABLE = frozenset(
    {
        "models",
        "distribution",
        "latency",
        "latency_std",
        "ttft",
        "tokens_per_second",
        "completion_tokens",
        "max_stream_tokens",
        "error_rate",
        "error_kinds",
        "seed",
        "name",
    }
)


def apply_control(settings: SimSettings, changes: Any) -> SimSettings:
    """``settings`` with ``changes`` (a JSON object from ``POST /_control``) applied."""
    if not isinstance(changes, dict):
        raise ConfigError("(body)", "must be a JSON object of settings to change")
    unknown = sorted(set(changes) - CONTROLLABLE)
    if unknown:
        raise ConfigError(
            unknown[0], f"cannot be changed at run time; allowed: {sorted(CONTROLLABLE)}"
        )
    fields = {f.name: f.type for f in dataclasses.fields(SimSettings)}
    cast: dict[str, Any] = {}
    for key, raw in changes.items():
        kind = str(fields[key])
        value = raw
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(key, f"must be a number, got {value!r}")
            value = float(value)
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(key, f"must be an integer, got {value!r}")
        elif kind == "str":
            if not isinstance(value, str):
                raise ConfigError(key, f"must be a string, got {value!r}")
        elif not isinstance(value, (list, tuple, str)):
            raise ConfigError(key, f"must be a list, got {value!r}")
        cast[key] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(settings, **cast)
