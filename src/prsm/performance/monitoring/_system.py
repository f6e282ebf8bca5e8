"""System metrics: cpu, memory, disk and network I/O (psutil), GPUs (NVML, via ``gpu/``).

:class:`SystemSampler` turns psutil's cumulative counters into rates between two reads; the
first read has no rates yet (they are ``None``, never a made-up zero). Reading blocks for a
few hundred microseconds (``/proc``, NVML): the monitor calls it in a worker thread.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Protocol

import psutil

log = logging.getLogger("prsm.performance.monitoring")


class GPUSource(Protocol):
    """What the sampler reads GPUs from (:class:`~prsm.performance.gpu.GPUMonitor`)."""

    @property
    def available(self) -> bool: ...

    reason: str | None

    def read(self) -> list[Any]: ...


def default_gpus() -> GPUSource:
    """The machine's GPUs through NVML (a monitor saying "no GPU" without one)."""
    from ..gpu._monitor import GPUMonitor

    return GPUMonitor()


def _rates(now: Any, before: Any, dt: float, fields: tuple[str, ...]) -> dict[str, float | None]:
    if before is None or now is None or dt <= 0:
        return {f"{f}_per_s": None for f in fields}
    return {f"{f}_per_s": max(0.0, (getattr(now, f) - getattr(before, f)) / dt) for f in fields}


_DISK = ("read_bytes", "write_bytes", "read_count", "write_count")
_NET = ("bytes_sent", "bytes_recv", "packets_sent", "packets_recv")


class SystemSampler:
    """Reads the machine and this process. ``gpus=None`` reads no GPU (reported as such)."""

    def __init__(self, gpus: GPUSource | None = None) -> None:
        self.gpus = gpus
        self.process = psutil.Process(os.getpid())
        self._last: tuple[float, Any, Any] | None = None
        psutil.cpu_percent(None)  # the first call only starts the measurement
        self.process.cpu_percent(None)

    def read(self, now: float) -> dict[str, Any]:
        """The ``system`` section of :meth:`PerformanceMonitor.collect_metrics` at monotonic
        time ``now``: percentages 0–100 for cpu and memory (as psutil gives them), I/O rates
        per second since the previous read."""
        disk = _safe(psutil.disk_io_counters)
        net = _safe(psutil.net_io_counters)
        last = self._last
        dt = now - last[0] if last is not None else 0.0
        mem = psutil.virtual_memory()
        with self.process.oneshot():
            rss = self.process.memory_info().rss
            proc_cpu = self.process.cpu_percent(None)
            threads = self.process.num_threads()
            fds = self.process.num_fds() if hasattr(self.process, "num_fds") else None
        out: dict[str, Any] = {
            "cpu_usage": psutil.cpu_percent(None),
            "cpu_count": psutil.cpu_count() or 1,
            "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "memory_usage": mem.percent,
            "memory_used_bytes": mem.total - mem.available,
            "memory_total_bytes": mem.total,
            "disk_io": _rates(disk, last[1] if last else None, dt, _DISK),
            "network_io": _rates(net, last[2] if last else None, dt, _NET),
            "process": {
                "cpu_usage": proc_cpu,
                "rss_bytes": rss,
                "threads": threads,
                "open_fds": fds,
            },
        }
        self._last = (now, disk, net)
        out.update(self._gpu())
        return out

    def _gpu(self) -> dict[str, Any]:
        gpus = self.gpus
        if gpus is None:
            return {
                "gpu": {"available": False, "reason": "GPU monitoring is off", "devices": []},
                "gpu_utilization": None,
                "gpu_memory_usage": None,
            }
        if not gpus.available:
            return {
                "gpu": {"available": False, "reason": gpus.reason, "devices": []},
                "gpu_utilization": None,
                "gpu_memory_usage": None,
            }
        devices = []
        for r in gpus.read():
            devices.append(
                {
                    "index": r.index,
                    "name": r.name,
                    "utilization": r.utilization,
                    "memory_used_bytes": r.used_bytes,
                    "memory_total_bytes": r.total_bytes,
                    "memory_usage": r.used_bytes / r.total_bytes if r.total_bytes else None,
                    "temperature_c": r.temperature_c,
                }
            )
        utils = [d["utilization"] for d in devices if d["utilization"] is not None]
        used = sum(d["memory_used_bytes"] for d in devices)
        total = sum(d["memory_total_bytes"] for d in devices)
        return {
            "gpu": {"available": True, "reason": None, "devices": devices},
            "gpu_utilization": sum(utils) / len(utils) if utils else None,
            "gpu_memory_usage": used / total if total else None,
        }


def _safe(read: Any) -> Any:
    """psutil's counters, or ``None`` where the machine has none (no disk, a container)."""
    try:
        return read()
    except (OSError, RuntimeError) as exc:
        log.debug("psutil %s unavailable: %s", getattr(read, "__name__", read), exc)
        return None
