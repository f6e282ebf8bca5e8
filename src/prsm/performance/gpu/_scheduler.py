"""``GPUScheduler``: awaitable placements over the memory manager, kept fresh from NVML.

``await scheduler.place(name, bytes)`` returns a placement at once when a device has room, or
waits in the memory manager's queue until a release or a fresh reading (another process freed
memory) makes room. :meth:`GPUScheduler.run` re-reads the monitor every ``interval`` seconds
on the injected clock.
"""

from __future__ import annotations

import asyncio

from ..clock import Clock, SystemClock
from ._memory import GPUMemoryManager, GPUPlacement
from ._monitor import GPUMonitor


class GPUScheduler:
    """Places work on GPUs by memory (best fit), queueing what does not fit yet."""

    def __init__(
        self,
        monitor: GPUMonitor,
        memory: GPUMemoryManager,
        *,
        interval: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval: must be > 0 seconds, got {interval}")
        self.monitor = monitor
        self.memory = memory
        self.interval = interval
        self._clock = clock or SystemClock()
        self._waiting: dict[str, asyncio.Future[GPUPlacement]] = {}

    async def place(self, name: str, need: int) -> GPUPlacement:
        """A placement for ``need`` bytes, waiting for room (bound it with ``asyncio.timeout``;
        a cancelled wait leaves the queue)."""
        placement = self.memory.request(name, need)
        if placement is not None:
            return placement
        future: asyncio.Future[GPUPlacement] = asyncio.get_running_loop().create_future()
        self._waiting[name] = future
        try:
            return await future
        except BaseException:
            self._waiting.pop(name, None)
            # nobody waits for it any more: leave the queue, or give back what was placed
            self._deliver(self.memory.release(name))
            raise

    def release(self, name: str) -> None:
        """Free ``name``'s reservation; queued work that now fits is placed."""
        self._deliver(self.memory.release(name))

    def refresh(self) -> list[GPUPlacement]:
        """Read the GPUs again; queued work that now fits is placed (and returned)."""
        placed = self.memory.refresh(self.monitor.read())
        self._deliver(placed)
        return placed

    async def run(self) -> None:
        """Refresh every ``interval`` seconds until cancelled."""
        while True:
            await self._clock.sleep(self.interval)
            self.refresh()

    def _deliver(self, placed: list[GPUPlacement]) -> None:
        for p in placed:
            future = self._waiting.pop(p.name, None)
            if future is not None and not future.done():
                future.set_result(p)
