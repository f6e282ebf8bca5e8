"""Workload profiles and resource types: validation, eligibility, what a placement takes."""

from __future__ import annotations

import pytest

from prsm.performance.errors import ConfigError
from prsm.performance.optimize import KindPerformance, ResourceType, WorkloadProfile
from prsm.performance.optimize._model import (
    check_names,
    gpus_per_replica,
    placement,
    resource_from_mapping,
    workload_from_mapping,
)

from .helpers import gpu, llm


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"requests_per_second": -1}, "requests_per_second"),
        ({"latency_slo_ms": 0}, "latency_slo_ms"),
        ({"priority": float("nan")}, "priority"),
        ({"min_replicas": 1.5}, "min_replicas"),
        ({"cpu": True}, "cpu"),
        ({"kind": ""}, "kind"),
    ],
)
def test_bad_workload_names_the_field(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {
        "name": "w",
        "kind": "llm",
        "requests_per_second": 1.0,
        "latency_slo_ms": 100.0,
    }
    with pytest.raises(ConfigError) as err:
        WorkloadProfile(**{**base, **kwargs})  # type: ignore[arg-type]
    assert err.value.field == field


def test_bad_resource_names_the_field() -> None:
    perf = {"llm": KindPerformance(1, 1)}
    with pytest.raises(ConfigError, match="available"):
        ResourceType("r", 1.0, -1, 4, 16, perf)
    with pytest.raises(ConfigError, match="gpu_memory_gb"):
        ResourceType("r", 1.0, 1, 4, 16, perf, gpus=1)
    with pytest.raises(ConfigError, match="performance"):
        ResourceType("r", 1.0, 1, 4, 16, {})
    with pytest.raises(ConfigError, match="throughput"):
        KindPerformance(0, 1)


def test_mappings_name_the_entry() -> None:
    with pytest.raises(ConfigError) as err:
        workload_from_mapping({"name": "w", "kind": "k", "requests_per_second": 1}, "workloads[3]")
    assert err.value.field == "workloads[3].latency_slo_ms"
    with pytest.raises(ConfigError) as err:
        resource_from_mapping(
            {
                "name": "r",
                "cost_per_hour": 1,
                "available": 1,
                "cpu": 1,
                "memory_gb": 1,
                "performance": {"llm": {"throughput": -2, "latency_ms": 3}},
            },
            "resources[0]",
        )
    assert err.value.field == "resources[0].performance.llm.throughput"
    with pytest.raises(ConfigError, match=r"workloads\[0\]\.colour"):
        workload_from_mapping({"colour": "red"}, "workloads[0]")


def test_names_unique_and_allowed_resources_known() -> None:
    with pytest.raises(ConfigError, match="duplicate"):
        check_names([llm("a", 1), llm("a", 2)], [gpu("g", 1, 1)])
    bad = WorkloadProfile("w", "llm", 1, 100, allowed_resources=frozenset({"nope"}))
    with pytest.raises(ConfigError, match="unknown resource type 'nope'"):
        check_names([bad], [gpu("g", 1, 1)])
    with pytest.raises(ConfigError, match="at least one workload"):
        check_names([], [gpu("g", 1, 1)])


def test_gpus_per_replica_is_a_power_of_two() -> None:
    assert [gpus_per_replica(gb, 24) for gb in (1, 24, 25, 50, 72, 100)] == [1, 1, 2, 4, 4, 8]


def test_placement_counts_replicas_and_gives_reasons() -> None:
    fit = placement(llm("chat", 5.0), gpu("l4", 0.8, 4))  # 2 rps a replica -> 3 replicas
    assert not isinstance(fit, str)
    assert (fit.replicas, fit.gpus, fit.cpu, fit.memory_gb) == (3, 3, 6, 24)
    assert fit.headroom == pytest.approx(1 - 5000 / 8000)
    slow = WorkloadProfile("w", "llm", 1, 1000, gpu_memory_gb=16)
    assert "SLO" in str(placement(slow, gpu("l4", 0.8, 4)))
    big = WorkloadProfile("w", "llm", 1, 9000, gpu_memory_gb=30)  # needs 2 GPUs, unit has 1
    assert "2 GPUs" in str(placement(big, gpu("l4", 0.8, 4)))
    other = WorkloadProfile("w", "embed", 1, 9000)
    assert "no performance entry" in str(placement(other, gpu("l4", 0.8, 4)))
