"""A worker process's load, as the post's fractions: cpu and memory through psutil.

``cpu`` is the process's cpu time over the last interval (psutil's ``cpu_percent`` since the
previous reading) divided by the cores it may use (its torch threads), capped at 1;
``memory`` its resident set over the machine's memory. The first reading of a process has
no interval behind it, so its cpu is ``None`` (not reported) rather than a made-up 0.
"""

from __future__ import annotations

import logging

import psutil

log = logging.getLogger("prsm.performance.workers")


class ProcessLoad:
    """Reads processes' cpu and memory fractions, keeping one psutil handle per pid."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._total = psutil.virtual_memory().total

    def read(self, pid: int, cores: int) -> tuple[float | None, float | None]:
        """(cpu, memory) of process ``pid`` using up to ``cores`` cores; ``(None, None)``
        when it is gone."""
        proc = self._procs.get(pid)
        first = proc is None
        try:
            if proc is None:
                proc = self._procs[pid] = psutil.Process(pid)
            with proc.oneshot():
                busy = proc.cpu_percent(None)
                rss = proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied) as exc:
            self._procs.pop(pid, None)
            log.debug("no load reading for process %d: %s", pid, exc)
            return None, None
        cpu = None if first else min(1.0, busy / 100.0 / max(1, cores))
        return cpu, min(1.0, rss / self._total)

    def keep(self, pids: set[int]) -> None:
        """Forget processes other than ``pids`` (restarted workers have new ones)."""
        for pid in [p for p in self._procs if p not in pids]:
            del self._procs[pid]
