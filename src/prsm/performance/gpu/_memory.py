"""``GPUMemoryManager``: best-fit placement of reservations on GPUs, a queue, and advice.

The manager knows each device's total and free memory (from NVML readings, refreshed with
:meth:`GPUMemoryManager.refresh`) and the reservations it has granted. A device's room is
``NVML free − reserved``: memory another process holds is not offered, and memory reserved
for a worker is never offered twice. Once a worker really allocates its reservation NVML
counts it as used as well, so the room is then underestimated by that much — conservative by
design, until the reservation is released.

- :meth:`~GPUMemoryManager.request` places a reservation on the device with the *least* room
  that still fits it (best fit, keeping big holes for big models), or queues it.
- :meth:`~GPUMemoryManager.release` and :meth:`~GPUMemoryManager.refresh` place queued
  reservations as room appears (in arrival order; a later smaller one may pass a larger one
  that still does not fit).
- :meth:`~GPUMemoryManager.advice`: fragmentation ratio = 1 − largest room / total room
  (free memory scattered over devices), utilisation = reserved-or-used / total; when
  fragmentation > 0.3 and utilisation < 0.5 (the source post's thresholds) it recommends
  consolidating and plans the moves that would empty the least-used devices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import ConfigError
from ._nvml import GPUReading


@dataclass(frozen=True, slots=True)
class GPUPlacement:
    """A reservation of ``bytes`` on GPU ``device`` for ``name``."""

    name: str
    device: int
    bytes: int

    @property
    def torch_device(self) -> str:
        return f"cuda:{self.device}"


@dataclass(frozen=True, slots=True)
class ConsolidationAdvice:
    """What the manager thinks of the current spread of memory."""

    fragmentation: float
    utilization: float
    consolidate: bool
    reason: str
    moves: tuple[tuple[str, int, int], ...] = field(default=())  # (name, from, to)


def best_fit(room: Mapping[int, int], need: int) -> int | None:
    """The device with the least room that still fits ``need`` (lowest index on ties)."""
    fits = [(free, index) for index, free in room.items() if free >= need]
    return min(fits)[1] if fits else None


class GPUMemoryManager:
    """Reservations on GPUs; see the module docstring."""

    def __init__(
        self,
        readings: Iterable[GPUReading] = (),
        *,
        fragmentation_threshold: float = 0.3,
        consolidation_utilization: float = 0.5,
    ) -> None:
        if not 0 <= fragmentation_threshold <= 1:
            raise ConfigError(
                "fragmentation_threshold", f"must be within [0, 1], got {fragmentation_threshold}"
            )
        if not 0 <= consolidation_utilization <= 1:
            raise ConfigError(
                "consolidation_utilization",
                f"must be within [0, 1], got {consolidation_utilization}",
            )
        self.fragmentation_threshold = fragmentation_threshold
        self.consolidation_utilization = consolidation_utilization
        self._total: dict[int, int] = {}
        self._free: dict[int, int] = {}
        self._placed: dict[str, GPUPlacement] = {}
        self._queue: list[tuple[str, int]] = []
        self.refresh(readings)

    # -- state ------------------------------------------------------------------------------
    def refresh(self, readings: Iterable[GPUReading]) -> list[GPUPlacement]:
        """Take new NVML readings; returns queued reservations that now fit (and are placed)."""
        for r in readings:
            self._total[r.index] = r.total_bytes
            self._free[r.index] = r.free_bytes
        return self._drain()

    def reserved(self, device: int) -> int:
        return sum(p.bytes for p in self._placed.values() if p.device == device)

    def room(self) -> dict[int, int]:
        """Bytes each device can still give out."""
        return {d: max(0, self._free[d] - self.reserved(d)) for d in self._total}

    @property
    def placements(self) -> dict[str, GPUPlacement]:
        return dict(self._placed)

    @property
    def queued(self) -> list[tuple[str, int]]:
        """Reservations waiting for room, in order: (name, bytes)."""
        return list(self._queue)

    # -- requests ---------------------------------------------------------------------------
    def request(self, name: str, need: int) -> GPUPlacement | None:
        """Place ``need`` bytes for ``name`` (best fit) or queue it and return ``None``."""
        if need <= 0:
            raise ValueError(f"need: must be > 0 bytes, got {need}")
        if name in self._placed or any(n == name for n, _ in self._queue):
            raise ValueError(f"name: {name!r} already holds or awaits a reservation")
        if need > max(self._total.values(), default=0):
            raise ValueError(
                f"need: {need} bytes exceed every GPU's total memory "
                f"({max(self._total.values(), default=0)} bytes); it can never be placed"
            )
        device = best_fit(self.room(), need) if not self._queue else None
        if device is None:
            self._queue.append((name, need))
            placed = self._drain()
            return next((p for p in placed if p.name == name), None)
        placement = GPUPlacement(name, device, need)
        self._placed[name] = placement
        return placement

    def release(self, name: str) -> list[GPUPlacement]:
        """Free ``name``'s reservation (or drop it from the queue); returns newly placed ones."""
        if self._placed.pop(name, None) is None:
            before = len(self._queue)
            self._queue = [(n, b) for n, b in self._queue if n != name]
            if len(self._queue) == before:
                raise KeyError(f"{name!r} holds no reservation and is not queued")
            return []
        # its memory is free in our books; NVML will show it once the process lets go
        return self._drain()

    def _drain(self) -> list[GPUPlacement]:
        placed: list[GPUPlacement] = []
        waiting: list[tuple[str, int]] = []
        for name, need in self._queue:
            device = best_fit(self.room(), need)
            if device is None:
                waiting.append((name, need))
                continue
            placement = GPUPlacement(name, device, need)
            self._placed[name] = placement
            placed.append(placement)
        self._queue = waiting
        return placed

    # -- advice -----------------------------------------------------------------------------
    def fragmentation(self) -> float:
        """1 − largest room on one device / room on all devices (0 when nothing is free)."""
        room = self.room()
        total = sum(room.values())
        return 0.0 if total == 0 else 1.0 - max(room.values()) / total

    def utilization(self) -> float:
        """Memory held (reserved or used, whichever is more) / total, over all devices."""
        total = sum(self._total.values())
        if total == 0:
            return 0.0
        held = sum(max(self.reserved(d), self._total[d] - self._free[d]) for d in self._total)
        return min(1.0, held / total)

    def advice(self) -> ConsolidationAdvice:
        """Whether to consolidate (fragmentation > threshold and utilisation < threshold)."""
        frag, util = self.fragmentation(), self.utilization()
        if frag <= self.fragmentation_threshold:
            return ConsolidationAdvice(
                frag, util, False, f"fragmentation {frag:.2f} <= {self.fragmentation_threshold}"
            )
        if util >= self.consolidation_utilization:
            return ConsolidationAdvice(
                frag, util, False,
                f"utilisation {util:.2f} >= {self.consolidation_utilization}: keep the spread",
            )  # fmt: skip
        moves = self._plan_moves()
        why = (
            f"fragmentation {frag:.2f} > {self.fragmentation_threshold} and utilisation "
            f"{util:.2f} < {self.consolidation_utilization}"
        )
        if not moves:
            why += "; but no reservation can move to another device"
        return ConsolidationAdvice(frag, util, bool(moves), why, tuple(moves))

    def _plan_moves(self) -> list[tuple[str, int, int]]:
        room = self.room()
        moves: list[tuple[str, int, int]] = []
        sources = sorted(
            (d for d in self._total if self.reserved(d) > 0), key=lambda d: (self.reserved(d), d)
        )
        emptied: set[int] = set()
        for source in sources:
            mine = sorted(
                (p for p in self._placed.values() if p.device == source),
                key=lambda p: -p.bytes,
            )
            trial = dict(room)
            planned = []
            for p in mine:
                targets = {d: r for d, r in trial.items() if d != source and d not in emptied}
                to = best_fit(targets, p.bytes)
                if to is None:
                    break
                trial[to] -= p.bytes
                trial[source] += p.bytes
                planned.append((p.name, source, to))
            else:
                if planned:
                    moves.extend(planned)
                    room = trial
                    emptied.add(source)
        return moves
