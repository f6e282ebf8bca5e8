"""Allocation inputs from a YAML or JSON file.

::

    budget_per_hour: 400          # optional ($/h)
    settings: {time_limit: 5}     # optional: OptimizerSettings fields
    resources:
      - name: g6.xlarge
        cost_per_hour: 0.8048
        available: 40             # units
        cpu: 4                    # per unit
        memory_gb: 16
        gpus: 1
        gpu_memory_gb: 24         # per GPU
        performance:              # per workload kind: one replica's figures here
          llm-8b: {throughput: 1.5, latency_ms: 7000}
    workloads:
      - name: support-chat
        kind: llm-8b
        requests_per_second: 12
        latency_slo_ms: 8000
        cpu: 4                    # per replica
        memory_gb: 12
        gpu_memory_gb: 20
        priority: 1
        allowed_resources: [g6.xlarge]   # optional
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import build, load_mapping
from ..errors import ConfigError
from ._model import ResourceType, WorkloadProfile, resource_from_mapping, workload_from_mapping
from ._settings import OptimizerSettings

_TOP = {"budget_per_hour", "settings", "resources", "workloads"}


@dataclass(frozen=True, slots=True)
class AllocationInput:
    """What an allocation file holds."""

    workloads: tuple[WorkloadProfile, ...]
    resources: tuple[ResourceType, ...]
    budget_per_hour: float | None
    settings: dict[str, Any]


def load_allocation_file(path: str | Path) -> AllocationInput:
    """Read and validate an allocation file; a bad entry raises
    :class:`~prsm.performance.errors.ConfigError` naming the file and the field."""
    source = str(path)
    data = load_mapping(path)
    try:
        return parse_allocation(data)
    except ConfigError as exc:
        raise ConfigError(exc.field, exc.problem, source=source) from None


def parse_allocation(data: dict[str, Any]) -> AllocationInput:
    unknown = sorted(set(data) - _TOP)
    if unknown:
        raise ConfigError(unknown[0], f"unknown section; allowed: {', '.join(sorted(_TOP))}")
    for key in ("resources", "workloads"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise ConfigError(key, "must be a non-empty list")
    resources = tuple(
        resource_from_mapping(r, f"resources[{i}]") for i, r in enumerate(data["resources"])
    )
    workloads = tuple(
        workload_from_mapping(w, f"workloads[{i}]") for i, w in enumerate(data["workloads"])
    )
    budget = data.get("budget_per_hour")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0
    ):
        raise ConfigError("budget_per_hour", f"must be a number > 0, got {budget!r}")
    settings = data.get("settings") or {}
    if not isinstance(settings, dict):
        raise ConfigError("settings", "must be a mapping of optimize settings")
    build(OptimizerSettings, settings, "settings")  # validated here, applied by the caller
    return AllocationInput(
        workloads, resources, None if budget is None else float(budget), settings
    )
