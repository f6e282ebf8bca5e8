"""Small hand-checkable instances shared by the optimiser's tests."""

from __future__ import annotations

from pathlib import Path

from prsm.performance.optimize import KindPerformance, ResourceType, WorkloadProfile
from prsm.performance.optimize._io import AllocationInput, load_allocation_file

SMALL = Path(__file__).with_name("small.yaml")


def small() -> AllocationInput:
    """``small.yaml``: an embedding service and a chat model on CPU, L4 and H100 types.

    By hand (weights 1 and 2): embed on cpu-8 is 4 replicas in one unit (0.40 $/h, headroom
    0.6), on gpu-l4 one replica (0.80, 0.94), on gpu-h100 one (2.50, 0.986); chat on gpu-l4
    is 4 replicas = 4 units (3.20, 0.125), on gpu-h100 one (2.50, 0.8). Each unit of the GPU
    types has one GPU, so they cannot share one. Best: embed on gpu-l4 (-0.80 + 1.88) and
    chat on gpu-h100 (-2.50 + 1.60): objective 0.18 at 3.30 $/h.
    """
    return load_allocation_file(SMALL)


def cores(name: str, cpu: float, price: float, available: int = 10) -> ResourceType:
    return ResourceType(
        name=name,
        cost_per_hour=price,
        available=available,
        cpu=cpu,
        memory_gb=64,
        performance={"svc": KindPerformance(throughput=10, latency_ms=10)},
    )


def svc(name: str, *, cpu: float = 3, rps: float = 10, slo: float = 100) -> WorkloadProfile:
    return WorkloadProfile(
        name=name, kind="svc", requests_per_second=rps, latency_slo_ms=slo, cpu=cpu, memory_gb=1
    )


def gpu(name: str, price: float, available: int, throughput: float = 2.0) -> ResourceType:
    return ResourceType(
        name=name,
        cost_per_hour=price,
        available=available,
        cpu=8,
        memory_gb=64,
        gpus=1,
        gpu_memory_gb=24,
        performance={"llm": KindPerformance(throughput=throughput, latency_ms=5000)},
    )


def llm(name: str, rps: float) -> WorkloadProfile:
    return WorkloadProfile(
        name=name,
        kind="llm",
        requests_per_second=rps,
        latency_slo_ms=8000,
        cpu=2,
        memory_gb=8,
        gpu_memory_gb=16,
    )


def need(module: str) -> None:
    """Skip (fail under CI) unless ``module`` from the ``optimize`` extra is installed."""
    from tests.benchmarks.quick import need as _need

    _need(module, extra="optimize")
