"""``GPUMonitor``: the machine's GPUs as NVML reports them, or one clear "no GPU" line."""

from __future__ import annotations

import logging
from typing import Any

from ..errors import NoGPUError
from ._nvml import NVML, GPUReading, PyNVML

log = logging.getLogger("prsm.performance.gpu")


def no_gpu_line(reason: str) -> str:
    """The one line every component reports on a machine without a usable GPU."""
    return f"no GPU: {reason}; running on CPU"


class GPUMonitor:
    """Reads utilisation, memory, temperature and processes of every GPU through ``nvml``.

    Construction starts NVML; on a machine without a GPU (or without NVML) :attr:`available`
    is false, :attr:`reason` says why, the "no GPU" line is logged once, and :meth:`read`
    returns an empty list.
    """

    def __init__(self, nvml: NVML | None = None) -> None:
        self.nvml: NVML = nvml if nvml is not None else PyNVML()
        self.reason: str | None = None
        try:
            self.nvml.init()
        except NoGPUError as exc:
            self.reason = str(exc)
            log.warning(no_gpu_line(self.reason))

    @property
    def available(self) -> bool:
        return self.reason is None

    @property
    def summary(self) -> str:
        """One line: the GPUs seen, or why none."""
        if self.reason is not None:
            return no_gpu_line(self.reason)
        names = [f"{r.index}: {r.name}" for r in self.read()]
        return f"{len(names)} GPU(s): " + ", ".join(names)

    def read(self) -> list[GPUReading]:
        """Every device's current reading (empty without a GPU)."""
        if self.reason is not None:
            return []
        return [self.nvml.read(i) for i in range(self.nvml.device_count())]

    def snapshot(self) -> dict[str, Any]:
        """Readings as plain data (for admin APIs and stats)."""
        return {
            "available": self.available,
            "summary": self.summary,
            "devices": [r.as_dict() for r in self.read()],
        }

    def close(self) -> None:
        if self.reason is None:
            self.nvml.shutdown()
