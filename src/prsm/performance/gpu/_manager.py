"""``GPUResourceManager``: the source post's facade over monitor, memory manager and scheduler.

- :meth:`GPUResourceManager.allocate_gpu_resources` takes a request, as the post calls it:
  :meth:`~GPUResourceManager.analyze_requirements` derives the memory it needs from its model
  (a registered footprint, else the parameter count in the model's name) and its context, or
  an explicit :class:`GPURequirements` overrides that; the placement goes to the GPU with the
  least room that fits, waiting in the queue when none fits; on a machine without a GPU it
  answers ``cpu`` at once with the "no GPU" line as its reason.
- :meth:`GPUResourceManager.dynamic_batching` groups requests into batches: per compatibility
  key, at the tuner's learned size (or ``max_batch_size``), capped so a batch's activations fit
  the GPU with the most room. Live batching is :class:`~prsm.performance.batching.
  DynamicBatcher`'s (the batching room sits above this one and uses it, not the reverse).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..clock import Clock
from ..errors import ConfigError
from ..types import AIRequest
from ._memory import GPUMemoryManager
from ._monitor import GPUMonitor, no_gpu_line
from ._nvml import NVML, MiB
from ._requirements import GPURequirements, ModelFootprint, analyze_requirements
from ._scheduler import GPUScheduler

T = TypeVar("T")


class SizeAdvisor(Protocol):
    """What :meth:`GPUResourceManager.dynamic_batching` reads of a batch-size tuner
    (:class:`~prsm.performance.batching.BatchTuner` is one)."""

    @property
    def chosen_size(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class GPUAllocation:
    """Where a model runs: ``device`` is ``"cuda:N"`` or ``"cpu"``; ``reason`` says why."""

    name: str
    device: str
    bytes: int
    reason: str

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("cuda")


class GPUResourceManager:
    """GPU readings, memory-aware placement, and batching for local models."""

    def __init__(
        self,
        nvml: NVML | None = None,
        *,
        fragmentation_threshold: float = 0.3,
        consolidation_utilization: float = 0.5,
        refresh_interval: float = 1.0,
        max_batch_size: int = 32,
        models: Sequence[ModelFootprint] = (),
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ConfigError("max_batch_size", f"must be an integer >= 1, got {max_batch_size!r}")
        self.monitor = GPUMonitor(nvml)
        self.memory = GPUMemoryManager(
            self.monitor.read(),
            fragmentation_threshold=fragmentation_threshold,
            consolidation_utilization=consolidation_utilization,
        )
        self.scheduler = GPUScheduler(
            self.monitor, self.memory, interval=refresh_interval, clock=clock
        )
        self.max_batch_size = max_batch_size
        self.models: dict[str, ModelFootprint] = {}
        for footprint in models:
            self.register_model(footprint)

    @property
    def available(self) -> bool:
        """Whether a GPU can be used."""
        return self.monitor.available

    @property
    def summary(self) -> str:
        return self.monitor.summary

    def register_model(self, footprint: ModelFootprint) -> None:
        """Tell :meth:`analyze_requirements` what a model needs (replaces an earlier one)."""
        self.models[footprint.model.lower()] = footprint

    def analyze_requirements(self, ai_request: AIRequest) -> GPURequirements:
        """The GPU memory ``ai_request`` needs (see :func:`._requirements.analyze_requirements`:
        a registered footprint with its KV cache for the request's context, else the parameter
        count in the model's name; :class:`~prsm.performance.errors.RequestValidationError`
        when neither says)."""
        return analyze_requirements(ai_request, self.models)

    async def allocate_gpu_resources(
        self, ai_request: AIRequest, requirements: GPURequirements | None = None
    ) -> GPUAllocation:
        """Reserve on a GPU what ``ai_request`` needs (``requirements`` overrides
        :meth:`analyze_requirements`); best fit, waiting in the queue while none has room
        (bound it with ``asyncio.timeout``); ``cpu`` on a machine without a GPU. The
        placement is named ``requirements.name``, else the request's id: give that name to
        :meth:`release`."""
        req = requirements if requirements is not None else self.analyze_requirements(ai_request)
        name = req.name or ai_request.id
        need = int(req.memory_mb * MiB)
        if not self.monitor.available:
            reason = no_gpu_line(self.monitor.reason or "unknown")
            return GPUAllocation(name, "cpu", 0, reason)
        self.scheduler.refresh()
        placement = await self.scheduler.place(name, need)
        room = self.memory.room()[placement.device]
        reason = (
            f"{req.memory_mb:.0f} MiB ({req.source}); best fit: GPU {placement.device} has "
            f"{room / MiB:.0f} MiB left after it"
        )
        return GPUAllocation(name, placement.torch_device, need, reason)

    def release(self, name: str) -> None:
        """Give ``name``'s GPU reservation back (queued allocations that now fit are placed)."""
        if self.monitor.available:
            self.scheduler.release(name)

    def dynamic_batching(
        self,
        requests: Sequence[T],
        *,
        key: Callable[[T], Hashable] | None = None,
        tuner: SizeAdvisor | None = None,
        per_item_mb: float = 0.0,
    ) -> list[list[T]]:
        """``requests`` grouped into batches: same key together (arrival order kept), each at
        most the learned size (``tuner.chosen_size``, else ``max_batch_size``) and, with
        ``per_item_mb``, at most what fits in the GPU with the most room."""
        size = (tuner.chosen_size if tuner is not None else None) or self.max_batch_size
        if per_item_mb > 0 and self.monitor.available:
            room = max(self.memory.room().values(), default=0)
            size = max(1, min(size, int(room // (per_item_mb * MiB))))
        groups: dict[Hashable, list[T]] = {}
        for item in requests:
            groups.setdefault(key(item) if key is not None else None, []).append(item)
        return [
            group[i : i + size] for group in groups.values() for i in range(0, len(group), size)
        ]

    def status(self) -> dict[str, Any]:
        """Readings, placements, queue, fragmentation and consolidation advice."""
        advice = self.memory.advice()
        return {
            **self.monitor.snapshot(),
            "placements": {
                n: {"device": p.device, "mb": round(p.bytes / MiB, 1)}
                for n, p in self.memory.placements.items()
            },
            "queued": [{"name": n, "mb": round(b / MiB, 1)} for n, b in self.memory.queued],
            "fragmentation": advice.fragmentation,
            "utilization": advice.utilization,
            "consolidate": advice.consolidate,
            "advice": advice.reason,
            "moves": [{"name": n, "from": a, "to": b} for n, a, b in advice.moves],
        }

    def close(self) -> None:
        self.monitor.close()
