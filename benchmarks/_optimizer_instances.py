"""Seeded, realistic allocation instances for ``benchmarks/optimizer.py``.

Resource types are real instance shapes with their list prices (AWS us-east-1 on-demand and
GCP/Lambda single-GPU shapes, 2025), repeated across regions (price × 1.00–1.25) and as spot
capacity (price × 0.30–0.65, few units). Workload kinds are the models people serve: two
embedding models (MiniLM, bge-large), a reranker, Llama-3.1-8B, Mixtral-8x7B and
Llama-3.1-70B; what a replica gives on each GPU model (requests/s at its latency) is of the
order published for vLLM and text-embeddings-inference at 256 output tokens a request.
Request rates follow a diurnal curve (a tenant's own phase) at a random hour of the day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from prsm.performance.optimize import KindPerformance, ResourceType, WorkloadProfile


@dataclass(frozen=True)
class Shape:
    name: str
    price: float  # $/hour, on demand
    cpu: float
    memory_gb: float
    gpus: int = 0
    gpu: str = ""  # GPU model, a key of GPU_MEMORY
    units: int = 200  # units one may get on demand


GPU_MEMORY = {"T4": 16.0, "L4": 24.0, "A10G": 24.0, "A100-40": 40.0, "A100-80": 80.0, "H100": 80.0}

SHAPES: tuple[Shape, ...] = (
    Shape("c7i.2xlarge", 0.357, 8, 16, units=400),
    Shape("c7i.8xlarge", 1.428, 32, 64, units=200),
    Shape("m7i.4xlarge", 0.8064, 16, 64, units=200),
    Shape("r7i.4xlarge", 1.0584, 16, 128, units=100),
    Shape("g4dn.xlarge", 0.526, 4, 16, 1, "T4", 100),
    Shape("g4dn.12xlarge", 3.912, 48, 192, 4, "T4", 30),
    Shape("g6.xlarge", 0.8048, 4, 16, 1, "L4", 120),
    Shape("g6.2xlarge", 0.9776, 8, 32, 1, "L4", 80),
    Shape("g6.12xlarge", 4.6016, 48, 192, 4, "L4", 30),
    Shape("g5.xlarge", 1.006, 4, 16, 1, "A10G", 120),
    Shape("g5.12xlarge", 5.672, 48, 192, 4, "A10G", 30),
    Shape("a2-highgpu-1g", 3.67, 12, 85, 1, "A100-40", 120),
    Shape("a2-ultragpu-1g", 5.07, 12, 170, 1, "A100-80", 100),
    Shape("p4d.24xlarge", 21.96, 96, 1152, 8, "A100-40", 30),
    Shape("p4de.24xlarge", 27.45, 96, 1152, 8, "A100-80", 24),
    Shape("a3-highgpu-1g", 11.06, 26, 234, 1, "H100", 60),
    Shape("gpu_1x_h100", 2.49, 26, 200, 1, "H100", 40),
    Shape("p5.48xlarge", 55.04, 192, 2048, 8, "H100", 20),
)

#: kind -> (cpu cores, host GB, GPU GB) per replica
FOOTPRINT = {
    "embed-small": (2.0, 2.0, 1.0),
    "embed-large": (4.0, 4.0, 2.0),
    "rerank": (4.0, 4.0, 2.0),
    "llm-8b": (4.0, 12.0, 20.0),
    "llm-moe": (8.0, 48.0, 110.0),
    "llm-70b": (8.0, 64.0, 160.0),
}

#: kind -> where it runs: "cpu" or a GPU model -> (requests/s per replica, latency ms)
PERF: dict[str, dict[str, tuple[float, float]]] = {
    "embed-small": {
        "cpu": (120, 30),
        "T4": (2500, 8),
        "L4": (3500, 6),
        "A10G": (4000, 5),
        "A100-40": (9000, 3),
        "A100-80": (9000, 3),
        "H100": (14000, 2),
    },
    "embed-large": {
        "cpu": (12, 160),
        "T4": (400, 25),
        "L4": (600, 18),
        "A10G": (700, 15),
        "A100-40": (1800, 8),
        "A100-80": (1800, 8),
        "H100": (3000, 5),
    },
    "rerank": {
        "cpu": (30, 90),
        "T4": (600, 20),
        "L4": (900, 14),
        "A10G": (1000, 12),
        "A100-40": (2500, 6),
        "A100-80": (2500, 6),
        "H100": (4000, 4),
    },
    "llm-8b": {
        "T4": (0.6, 14000),
        "L4": (1.5, 7000),
        "A10G": (1.8, 6000),
        "A100-40": (5.0, 3000),
        "A100-80": (6.0, 2800),
        "H100": (11.0, 1600),
    },
    "llm-moe": {
        "A100-40": (2.0, 7000),
        "A100-80": (2.5, 6000),
        "H100": (5.0, 3500),
    },
    "llm-70b": {
        "A100-40": (1.2, 12000),
        "A100-80": (1.5, 10000),
        "H100": (3.5, 5000),
    },
}

#: kind -> (share of workloads, median requests/s, spread (lognormal sigma), SLO choices ms)
MIX = {
    "embed-small": (0.22, 150.0, 1.2, (50, 100, 250)),
    "embed-large": (0.18, 60.0, 1.2, (50, 200, 400)),
    "rerank": (0.10, 40.0, 1.0, (30, 120, 300)),
    "llm-8b": (0.30, 3.0, 1.1, (3500, 8000, 15000)),
    "llm-moe": (0.10, 1.5, 1.0, (4000, 8000)),
    "llm-70b": (0.10, 1.0, 1.0, (6000, 12000, 20000)),
}


def resource_types(n: int, rng: np.random.Generator) -> list[ResourceType]:
    """``n`` resource types: every shape on demand first, then region and spot variants."""
    out: list[ResourceType] = []
    # fewer types than shapes: an even spread over the catalogue (CPU, small and large GPUs)
    spread = np.linspace(0, len(SHAPES) - 1, n).round().astype(int) if n < len(SHAPES) else None
    for i in range(n):
        shape = SHAPES[int(spread[i])] if spread is not None else SHAPES[i % len(SHAPES)]
        round_ = i // len(SHAPES)
        spot = round_ > 0 and rng.random() < 0.35
        price = shape.price * (1.0 if round_ == 0 else float(rng.uniform(1.0, 1.25)))
        units = shape.units
        if spot:
            price *= float(rng.uniform(0.30, 0.65))
            units = max(1, int(units * rng.uniform(0.05, 0.2)))
        elif round_ > 0:
            units = max(1, int(units * rng.uniform(0.3, 1.0)))
        where = "cpu" if shape.gpus == 0 else shape.gpu
        perf = {
            kind: KindPerformance(throughput=float(t), latency_ms=float(lat))
            for kind, table in PERF.items()
            if where in table
            for t, lat in [table[where]]
        }
        suffix = "" if round_ == 0 else f"@r{round_}" + ("-spot" if spot else "")
        out.append(
            ResourceType(
                name=f"{shape.name}{suffix}",
                cost_per_hour=round(price, 4),
                available=units,
                cpu=shape.cpu,
                memory_gb=shape.memory_gb,
                gpus=shape.gpus,
                gpu_memory_gb=GPU_MEMORY[shape.gpu] if shape.gpus else 0.0,
                performance=perf,
            )
        )
    return out


def workloads(
    n: int, rng: np.random.Generator, *, hour: float | None = None
) -> list[WorkloadProfile]:
    """``n`` workloads drawn from :data:`MIX`, rates on a diurnal curve at ``hour``."""
    kinds = list(MIX)
    shares = np.array([MIX[k][0] for k in kinds])
    at = float(rng.uniform(0, 24)) if hour is None else hour
    out = []
    for i in range(n):
        kind = kinds[int(rng.choice(len(kinds), p=shares / shares.sum()))]
        _, median, sigma, slos = MIX[kind]
        phase = float(rng.uniform(0, 24))  # the tenant's local peak hour
        diurnal = 1.0 + 0.6 * math.cos(2 * math.pi * (at - phase) / 24.0)
        rate = float(median * rng.lognormal(0.0, sigma) * diurnal)
        cpu, mem, gmem = FOOTPRINT[kind]
        priority = float(rng.choice([0.5, 1.0, 1.0, 2.0]))
        out.append(
            WorkloadProfile(
                name=f"{kind}-{i:04d}",
                kind=kind,
                requests_per_second=round(rate, 2),
                latency_slo_ms=float(rng.choice(slos)),
                cpu=cpu,
                memory_gb=mem,
                gpu_memory_gb=gmem,
                priority=priority,
            )
        )
    return out


def instance(
    n_workloads: int, n_types: int, seed: int
) -> tuple[list[WorkloadProfile], list[ResourceType]]:
    """One seeded instance: ``n_workloads`` workloads and ``n_types`` resource types."""
    rng = np.random.default_rng(seed)
    return workloads(n_workloads, rng), resource_types(n_types, rng)
