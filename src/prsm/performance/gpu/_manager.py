"""``GPUResourceManager``: the source post's facade over monitor, memory manager and scheduler.

- :meth:`GPUResourceManager.allocate_gpu_resources` places a model (a worker) on the GPU with
  the least room that fits it, waiting in the queue when none fits; on a machine without a GPU
  it answers ``cpu`` at once with the "no GPU" line as its reason.
- :meth:`GPUResourceManager.dynamic_batching` groups requests into batches: per compatibility
  key, at the tuner's learned size (or the batcher settings' size), capped so a batch's
  activations fit the GPU with the most room. For live traffic, :meth:`make_batcher` builds a
  :class:`~prsm.performance.batching.DynamicBatcher`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..batching._batcher import DynamicBatcher, RunBatch
from ..batching._settings import BatcherSettings
from ..batching._tuner import BatchTuner
from ..clock import Clock
from ..monitoring._registry import MetricsRegistry
from ._memory import GPUMemoryManager
from ._monitor import GPUMonitor, no_gpu_line
from ._nvml import NVML, MiB
from ._scheduler import GPUScheduler

T = TypeVar("T")
R = TypeVar("R")


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
        batcher_settings: BatcherSettings | None = None,
        metrics: MetricsRegistry | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.monitor = GPUMonitor(nvml)
        self.memory = GPUMemoryManager(
            self.monitor.read(),
            fragmentation_threshold=fragmentation_threshold,
            consolidation_utilization=consolidation_utilization,
        )
        self.scheduler = GPUScheduler(
            self.monitor, self.memory, interval=refresh_interval, clock=clock
        )
        self.batcher_settings = batcher_settings or BatcherSettings()
        self._metrics = metrics
        self._clock = clock

    @property
    def available(self) -> bool:
        """Whether a GPU can be used."""
        return self.monitor.available

    @property
    def summary(self) -> str:
        return self.monitor.summary

    async def allocate_gpu_resources(self, name: str, memory_mb: int) -> GPUAllocation:
        """Reserve ``memory_mb`` on a GPU for ``name`` (best fit; waits in the queue while none
        has room: bound it with ``asyncio.timeout``); ``cpu`` on a machine without a GPU."""
        need = int(memory_mb * MiB)
        if not self.monitor.available:
            reason = no_gpu_line(self.monitor.reason or "unknown")
            return GPUAllocation(name, "cpu", 0, reason)
        self.scheduler.refresh()
        placement = await self.scheduler.place(name, need)
        room = self.memory.room()[placement.device]
        reason = f"best fit: GPU {placement.device} has {room / MiB:.0f} MiB left after it"
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
        tuner: BatchTuner | None = None,
        per_item_mb: float = 0.0,
    ) -> list[list[T]]:
        """``requests`` grouped into batches: same key together (arrival order kept), each at
        most the learned size (``tuner.chosen_size``, else ``max_batch_size``) and, with
        ``per_item_mb``, at most what fits in the GPU with the most room."""
        size = (tuner.chosen_size if tuner is not None else None) or (
            self.batcher_settings.max_batch_size
        )
        if per_item_mb > 0 and self.monitor.available:
            room = max(self.memory.room().values(), default=0)
            size = max(1, min(size, int(room // (per_item_mb * MiB))))
        groups: dict[Hashable, list[T]] = {}
        for item in requests:
            groups.setdefault(key(item) if key is not None else None, []).append(item)
        return [
            group[i : i + size] for group in groups.values() for i in range(0, len(group), size)
        ]

    def make_batcher(
        self,
        run_batch: RunBatch[T, R],
        *,
        name: str = "batcher",
        settings: BatcherSettings | None = None,
    ) -> DynamicBatcher[T, R]:
        """A live :class:`DynamicBatcher` with this manager's settings, metrics and clock."""
        return DynamicBatcher(
            run_batch,
            settings or self.batcher_settings,
            name=name,
            metrics=self._metrics,
            clock=self._clock,
        )

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
