"""Reading GPUs: the :class:`NVML` Protocol, the real one (nvidia-ml-py), and a fake for tests.

:class:`PyNVML` reads real devices through the ``pynvml`` module of ``nvidia-ml-py``;
:class:`FakeNVML` holds devices in memory that a test sets up and changes. Both raise
:class:`~prsm.performance.errors.NoGPUError` from :meth:`NVML.init` when there is no GPU to
read, with the reason as its message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from ..errors import NoGPUError

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class GPUProcess:
    """A process using a GPU; ``used_bytes`` is ``None`` where the driver does not say."""

    pid: int
    used_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class GPUReading:
    """One device's state: memory in bytes, utilisation in [0, 1], temperature in °C."""

    index: int
    name: str
    total_bytes: int
    used_bytes: int
    free_bytes: int
    utilization: float | None = None
    memory_utilization: float | None = None
    temperature_c: float | None = None
    processes: tuple[GPUProcess, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "memory_total_mb": round(self.total_bytes / MiB, 1),
            "memory_used_mb": round(self.used_bytes / MiB, 1),
            "memory_free_mb": round(self.free_bytes / MiB, 1),
            "utilization": self.utilization,
            "memory_utilization": self.memory_utilization,
            "temperature_c": self.temperature_c,
            "processes": [{"pid": p.pid, "used_bytes": p.used_bytes} for p in self.processes],
        }


@runtime_checkable
class NVML(Protocol):
    """What the GPU monitor needs from NVML."""

    def init(self) -> None:
        """Start reading; :class:`NoGPUError` (with the reason) when there is nothing to read."""
        ...

    def shutdown(self) -> None: ...

    def device_count(self) -> int: ...

    def read(self, index: int) -> GPUReading:
        """The current state of device ``index``."""
        ...


class PyNVML:
    """The real NVML, through ``pynvml`` (the ``nvidia-ml-py`` distribution)."""

    def __init__(self) -> None:
        self._nvml: Any = None

    def init(self) -> None:
        try:
            import pynvml
        except ImportError as exc:
            raise NoGPUError("nvidia-ml-py (pynvml) is not installed") from exc
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise NoGPUError(f"NVML is not available ({exc})") from exc
        self._nvml = pynvml
        if self.device_count() == 0:
            self.shutdown()
            raise NoGPUError("NVML found no GPU")

    def shutdown(self) -> None:
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None

    def device_count(self) -> int:
        return int(self._api().nvmlDeviceGetCount())

    def read(self, index: int) -> GPUReading:
        nv = self._api()
        handle = nv.nvmlDeviceGetHandleByIndex(index)
        name = nv.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else str(name)
        mem = nv.nvmlDeviceGetMemoryInfo(handle)
        util = mem_util = temp = None
        try:
            rates = nv.nvmlDeviceGetUtilizationRates(handle)
            util, mem_util = rates.gpu / 100.0, rates.memory / 100.0
        except nv.NVMLError_NotSupported:
            util = None  # some devices (MIG slices) do not report utilisation
        try:
            temp = float(nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU))
        except nv.NVMLError_NotSupported:
            temp = None
        processes: list[GPUProcess] = []
        try:
            for p in nv.nvmlDeviceGetComputeRunningProcesses(handle):
                used = getattr(p, "usedGpuMemory", None)
                processes.append(GPUProcess(int(p.pid), int(used) if used is not None else None))
        except nv.NVMLError_NotSupported:
            processes = []
        return GPUReading(
            index=index,
            name=name,
            total_bytes=int(mem.total),
            used_bytes=int(mem.used),
            free_bytes=int(mem.free),
            utilization=util,
            memory_utilization=mem_util,
            temperature_c=temp,
            processes=tuple(processes),
        )

    def _api(self) -> Any:
        if self._nvml is None:
            raise NoGPUError("NVML is not initialised")
        return self._nvml


@dataclass
class FakeDevice:
    """A fake GPU: set its fields to change what the fake NVML reports."""

    name: str = "Fake GPU"
    total_bytes: int = 16 * 1024 * MiB
    used_bytes: int = 0
    utilization: float | None = 0.0
    temperature_c: float | None = 40.0
    processes: list[GPUProcess] = field(default_factory=list)


class FakeNVML:
    """An in-memory NVML for tests: ``FakeNVML([FakeDevice(...), ...])`` or
    ``FakeNVML(unavailable="driver not loaded")`` for a machine without a GPU."""

    def __init__(
        self, devices: Iterable[FakeDevice] = (), *, unavailable: str | None = None
    ) -> None:
        self.devices = list(devices)
        self.unavailable = unavailable
        self.initialised = False

    def init(self) -> None:
        if self.unavailable is not None:
            raise NoGPUError(self.unavailable)
        if not self.devices:
            raise NoGPUError("NVML found no GPU")
        self.initialised = True

    def shutdown(self) -> None:
        self.initialised = False

    def device_count(self) -> int:
        return len(self.devices)

    def read(self, index: int) -> GPUReading:
        if not self.initialised:
            raise NoGPUError("NVML is not initialised")
        d = self.devices[index]
        used = min(d.used_bytes, d.total_bytes)
        return GPUReading(
            index=index,
            name=d.name,
            total_bytes=d.total_bytes,
            used_bytes=used,
            free_bytes=d.total_bytes - used,
            utilization=d.utilization,
            memory_utilization=used / d.total_bytes if d.total_bytes else None,
            temperature_c=d.temperature_c,
            processes=tuple(d.processes),
        )

    def set_used(self, index: int, used_bytes: int) -> None:
        """Change device ``index``'s used memory (another process allocating or freeing)."""
        self.devices[index] = replace(self.devices[index], used_bytes=used_bytes)
