"""The allocation model's inputs: workload profiles and resource types (imports only ``errors``).

A **workload** is a service with a steady request rate (its profile: requests/s, a replica's
CPU cores, host memory and GPU memory, a latency SLO, the resource types it may run on, a
priority and its ``kind``, e.g. ``llm-8b`` or ``embed-small``). A **resource type** is a kind
of machine (an instance type in a region, spot or on demand): what one unit holds (CPU cores,
host memory, GPUs and the memory of each), how many units may be used, what a unit costs an
hour, and for each workload kind what one replica on it sustains (requests/s at its latency)
and the latency it gives.

A workload placed on a type runs ``max(min_replicas, ceil(rate / throughput))`` replicas there.
Each replica takes the workload's CPU and host memory, and on a GPU type whole GPUs: the
smallest power of two whose memory holds ``gpu_memory_gb`` (tensor parallelism splits a
model over 1, 2, 4 or 8 GPUs; a GPU is not shared between replicas, as with Kubernetes'
integer ``nvidia.com/gpu`` requests). On a type without GPUs the model's memory is host
memory. A type is eligible for a workload when the workload may run there (``allowed``),
the type has a performance entry for its kind, the latency meets the SLO, and one replica
fits one unit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError


def _positive(field_name: str, value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(field_name, f"must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(field_name, f"must be {bound}, got {value!r}")
    return float(value)


def _name(field_name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(field_name, f"must be a non-empty string, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class KindPerformance:
    """What one replica of a workload kind gives on a resource type.

    ``throughput``: requests/s one replica sustains while keeping ``latency_ms``;
    ``latency_ms``: the latency a request sees there (compare with a workload's SLO).
    """

    throughput: float
    latency_ms: float

    def __post_init__(self) -> None:
        _positive("throughput", self.throughput)
        _positive("latency_ms", self.latency_ms)


@dataclass(frozen=True, slots=True)
class ResourceType:
    """A kind of machine one may rent units of.

    ``cpu`` cores, ``memory_gb`` host memory, ``gpus`` GPUs of ``gpu_memory_gb`` each, per
    unit; ``available`` units at most; ``cost_per_hour`` per unit; ``performance`` maps a
    workload kind to what one replica of it gives here (kinds absent cannot run here).
    """

    name: str
    cost_per_hour: float
    available: int
    cpu: float
    memory_gb: float
    performance: Mapping[str, KindPerformance]
    gpus: int = 0
    gpu_memory_gb: float = 0.0

    def __post_init__(self) -> None:
        _name("name", self.name)
        _positive("cost_per_hour", self.cost_per_hour)
        if isinstance(self.available, bool) or not isinstance(self.available, int):
            raise ConfigError("available", f"must be an integer, got {self.available!r}")
        if self.available < 0:
            raise ConfigError("available", f"must be >= 0 units, got {self.available!r}")
        _positive("cpu", self.cpu)
        _positive("memory_gb", self.memory_gb)
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, int) or self.gpus < 0:
            raise ConfigError("gpus", f"must be an integer >= 0, got {self.gpus!r}")
        _positive("gpu_memory_gb", self.gpu_memory_gb, allow_zero=True)
        if self.gpus > 0 and self.gpu_memory_gb <= 0:
            raise ConfigError("gpu_memory_gb", "must be > 0 on a type with GPUs")
        if not self.performance:
            raise ConfigError("performance", "must name at least one workload kind")
        for kind, perf in self.performance.items():
            _name("performance", kind)
            if not isinstance(perf, KindPerformance):
                raise ConfigError(f"performance.{kind}", "must be a KindPerformance")


@dataclass(frozen=True, slots=True)
class WorkloadProfile:
    """One service to place: its demand and what it needs from a replica.

    ``requests_per_second``: the rate to serve; ``cpu`` cores and ``memory_gb`` host memory
    per replica; ``gpu_memory_gb``: the model's memory (on a GPU type, on the GPU; elsewhere,
    in host memory); ``latency_slo_ms``: the latency it must get; ``allowed_resources``: the
    resource types it may run on (empty: any); ``priority``: its weight in the performance
    term; ``min_replicas``: replicas it runs even when idle.
    """

    name: str
    kind: str
    requests_per_second: float
    latency_slo_ms: float
    cpu: float = 1.0
    memory_gb: float = 1.0
    gpu_memory_gb: float = 0.0
    allowed_resources: frozenset[str] = field(default_factory=frozenset)
    priority: float = 1.0
    min_replicas: int = 1

    def __post_init__(self) -> None:
        _name("name", self.name)
        _name("kind", self.kind)
        _positive("requests_per_second", self.requests_per_second, allow_zero=True)
        _positive("latency_slo_ms", self.latency_slo_ms)
        _positive("cpu", self.cpu, allow_zero=True)
        _positive("memory_gb", self.memory_gb, allow_zero=True)
        _positive("gpu_memory_gb", self.gpu_memory_gb, allow_zero=True)
        _positive("priority", self.priority, allow_zero=True)
        if (
            isinstance(self.min_replicas, bool)
            or not isinstance(self.min_replicas, int)
            or self.min_replicas < 0
        ):
            raise ConfigError("min_replicas", f"must be an integer >= 0, got {self.min_replicas!r}")
        if not isinstance(self.allowed_resources, frozenset):
            object.__setattr__(self, "allowed_resources", frozenset(self.allowed_resources))


@dataclass(frozen=True, slots=True)
class Fit:
    """What a workload takes on one resource type: its replicas there and their total CPU
    cores, host memory and GPUs, the latency it gets and its headroom ``1 - latency / SLO``."""

    replicas: int
    cpu: float
    memory_gb: float
    gpus: int
    latency_ms: float
    headroom: float


def gpus_per_replica(gpu_memory_gb: float, per_gpu_gb: float) -> int:
    """Whole GPUs one replica takes: the smallest power of two holding the model (≥ 1)."""
    need = max(1, math.ceil(gpu_memory_gb / per_gpu_gb - 1e-9))
    return 1 << (need - 1).bit_length()


def placement(w: WorkloadProfile, r: ResourceType) -> Fit | str:
    """What ``w`` takes on ``r``, or the reason it cannot run there (one short phrase)."""
    if w.allowed_resources and r.name not in w.allowed_resources:
        return "not in its allowed_resources"
    perf = r.performance.get(w.kind)
    if perf is None:
        return f"no performance entry for kind {w.kind!r}"
    if perf.latency_ms > w.latency_slo_ms:
        return f"latency {perf.latency_ms:g} ms > SLO {w.latency_slo_ms:g} ms"
    if r.gpus > 0:
        gpus = gpus_per_replica(w.gpu_memory_gb, r.gpu_memory_gb)
        memory = w.memory_gb
    else:
        gpus = 0
        memory = w.memory_gb + w.gpu_memory_gb
    if gpus > r.gpus:
        return f"a replica needs {gpus} GPUs, a unit has {r.gpus}"
    if w.cpu > r.cpu:
        return f"a replica needs {w.cpu:g} cores, a unit has {r.cpu:g}"
    if memory > r.memory_gb:
        return f"a replica needs {memory:g} GB memory, a unit has {r.memory_gb:g}"
    replicas = max(w.min_replicas, math.ceil(w.requests_per_second / perf.throughput - 1e-9))
    return Fit(
        replicas=replicas,
        cpu=replicas * w.cpu,
        memory_gb=replicas * memory,
        gpus=replicas * gpus,
        latency_ms=perf.latency_ms,
        headroom=1.0 - perf.latency_ms / w.latency_slo_ms,
    )


# ----------------------------------------------------------------------------- from mappings

_WORKLOAD_KEYS = {
    "name",
    "kind",
    "requests_per_second",
    "latency_slo_ms",
    "cpu",
    "memory_gb",
    "gpu_memory_gb",
    "allowed_resources",
    "priority",
    "min_replicas",
}
_RESOURCE_KEYS = {
    "name",
    "cost_per_hour",
    "available",
    "cpu",
    "memory_gb",
    "gpus",
    "gpu_memory_gb",
    "performance",
}


def _check_keys(where: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}", f"unknown field; allowed: {', '.join(sorted(allowed))}"
        )


def _rewhere(where: str, exc: ConfigError) -> ConfigError:
    return ConfigError(f"{where}.{exc.field}", exc.problem, source=exc.source)


def workload_from_mapping(data: Mapping[str, Any], where: str = "workloads[?]") -> WorkloadProfile:
    """A :class:`WorkloadProfile` from a plain mapping (a file's entry), errors naming ``where``."""
    if not isinstance(data, Mapping):
        raise ConfigError(where, f"must be a mapping, got {type(data).__name__}")
    _check_keys(where, data, _WORKLOAD_KEYS)
    for required in ("name", "kind", "requests_per_second", "latency_slo_ms"):
        if required not in data:
            raise ConfigError(f"{where}.{required}", "is required")
    kwargs = dict(data)
    allowed = kwargs.get("allowed_resources", ())
    if isinstance(allowed, str) or not isinstance(allowed, (list, tuple, set, frozenset)):
        raise ConfigError(f"{where}.allowed_resources", "must be a list of resource type names")
    kwargs["allowed_resources"] = frozenset(str(a) for a in allowed)
    try:
        return WorkloadProfile(**kwargs)
    except ConfigError as exc:
        raise _rewhere(where, exc) from None


def resource_from_mapping(data: Mapping[str, Any], where: str = "resources[?]") -> ResourceType:
    """A :class:`ResourceType` from a plain mapping; ``performance`` maps a kind to
    ``{throughput, latency_ms}``."""
    if not isinstance(data, Mapping):
        raise ConfigError(where, f"must be a mapping, got {type(data).__name__}")
    _check_keys(where, data, _RESOURCE_KEYS)
    for required in ("name", "cost_per_hour", "available", "cpu", "memory_gb", "performance"):
        if required not in data:
            raise ConfigError(f"{where}.{required}", "is required")
    perf_in = data["performance"]
    if not isinstance(perf_in, Mapping):
        raise ConfigError(f"{where}.performance", "must map a workload kind to its figures")
    perf: dict[str, KindPerformance] = {}
    for kind, figures in perf_in.items():
        at = f"{where}.performance.{kind}"
        if not isinstance(figures, Mapping):
            raise ConfigError(at, "must be a mapping {throughput, latency_ms}")
        _check_keys(at, figures, {"throughput", "latency_ms"})
        if "throughput" not in figures or "latency_ms" not in figures:
            raise ConfigError(at, "needs throughput and latency_ms")
        try:
            perf[str(kind)] = KindPerformance(figures["throughput"], figures["latency_ms"])
        except ConfigError as exc:
            raise _rewhere(at, exc) from None
    kwargs = {k: v for k, v in data.items() if k != "performance"}
    try:
        return ResourceType(performance=perf, **kwargs)
    except ConfigError as exc:
        raise _rewhere(where, exc) from None


def check_names(
    workloads: Iterable[WorkloadProfile], resources: Iterable[ResourceType]
) -> tuple[list[WorkloadProfile], list[ResourceType]]:
    """Lists of both, after checking names are unique and ``allowed_resources`` exist."""
    ws, rs = list(workloads), list(resources)
    if not ws:
        raise ConfigError("workloads", "must hold at least one workload")
    if not rs:
        raise ConfigError("resources", "must hold at least one resource type")
    for what, names_in in (
        ("workloads", [w.name for w in ws]),
        ("resources", [r.name for r in rs]),
    ):
        seen: set[str] = set()
        for i, name in enumerate(names_in):
            if name in seen:
                raise ConfigError(f"{what}[{i}].name", f"duplicate name {name!r}")
            seen.add(name)
    names = {r.name for r in rs}
    for i, w in enumerate(ws):
        unknown = sorted(w.allowed_resources - names)
        if unknown:
            raise ConfigError(
                f"workloads[{i}].allowed_resources", f"unknown resource type {unknown[0]!r}"
            )
    return ws, rs
