"""Settings of the dynamic batcher and its batch-size tuner (imports only ``errors``).

The knobs are Triton's and Ray Serve's: a batch leaves when it holds ``max_batch_size``
items or its oldest item has waited ``max_queue_delay`` seconds, whichever comes first; at
most ``max_queue_size`` items wait, past that a new one is rejected at once. With
``learn_batch_size`` the tuner replaces ``max_batch_size`` by the measured size that gives
the most throughput while a batch takes at most ``latency_budget`` seconds
(``max_batch_size`` stays the ceiling).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class BatcherSettings:
    """How a :class:`~prsm.performance.batching.DynamicBatcher` forms batches.

    ``max_batch_size``: items in one batch (the ceiling when learning).
    ``max_queue_delay``: seconds the oldest waiting item may wait before a partial batch leaves.
    ``max_queue_size``: items that may wait across all keys; one more is rejected at once.
    ``max_concurrent_batches``: batches running at once (1 suits one model process: the
    queue fills while a batch runs and the next batch leaves full).
    ``priorities``: serve higher ``priority`` first (FIFO within a priority); off: pure FIFO.
    ``urgent_priority``: with priorities on, an item at or above it leaves without waiting
    for the batch to fill (``None``: no such level).
    ``learn_batch_size``: let the tuner pick the size; off: always ``max_batch_size``.
    ``latency_budget``: seconds one batch may take for its size to be chosen.
    ``throughput_tolerance``: the largest size whose measured throughput is within this
    fraction of the best wins (same work per second, bursts drained in fewer batches).
    ``latency_tolerance``: throughput (a fraction of the best) the tuner may give up so that
    every waiting item fits in the batches that leave next — one batch per free slot — which
    keeps p99 within ``max_queue_delay`` + 2 × batch time (a request waits at most for the
    batch ahead of it, then its own); 0: never trade throughput for that.
    ``min_samples``: batches of a size measured before the tuner trusts it.
    ``reprobe_every``: every this many batches the tuner re-measures a neighbouring size, so the
    curve follows the load (0: never).
    ``ewma_alpha``: weight of a new batch in a size's running means (plain means until
    ``1 / ewma_alpha`` batches were seen). Batch times vary with the texts in them (the
    longest sets the time); a small weight keeps a few long batches from flipping the choice.
    ``demand_alpha``: weight of a new reading in the running mean of outstanding items (the
    load changes faster than the hardware's curve, so this follows it more closely).
    """

    max_batch_size: int = 64
    max_queue_delay: float = 0.005
    max_queue_size: int = 4096
    max_concurrent_batches: int = 1
    priorities: bool = False
    urgent_priority: int | None = None
    learn_batch_size: bool = True
    latency_budget: float = 0.5
    throughput_tolerance: float = 0.05
    latency_tolerance: float = 0.20
    min_samples: int = 3
    reprobe_every: int = 64
    ewma_alpha: float = 0.1
    demand_alpha: float = 0.3

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ConfigError("max_batch_size", f"must be >= 1, got {self.max_batch_size!r}")
        if not self.max_queue_delay >= 0:
            raise ConfigError(
                "max_queue_delay", f"must be >= 0 seconds, got {self.max_queue_delay!r}"
            )
        if self.max_queue_size < 1:
            raise ConfigError("max_queue_size", f"must be >= 1, got {self.max_queue_size!r}")
        if self.max_concurrent_batches < 1:
            raise ConfigError(
                "max_concurrent_batches", f"must be >= 1, got {self.max_concurrent_batches!r}"
            )
        if self.urgent_priority is not None and not self.priorities:
            raise ConfigError("urgent_priority", "needs priorities: true")
        if not self.latency_budget > 0:
            raise ConfigError("latency_budget", f"must be > 0 seconds, got {self.latency_budget!r}")
        if not 0 <= self.throughput_tolerance < 1:
            raise ConfigError(
                "throughput_tolerance", f"must be within [0, 1), got {self.throughput_tolerance!r}"
            )
        if not 0 <= self.latency_tolerance < 1:
            raise ConfigError(
                "latency_tolerance", f"must be within [0, 1), got {self.latency_tolerance!r}"
            )
        if self.min_samples < 1:
            raise ConfigError("min_samples", f"must be >= 1, got {self.min_samples!r}")
        if self.reprobe_every < 0:
            raise ConfigError("reprobe_every", f"must be >= 0, got {self.reprobe_every!r}")
        if not 0 < self.ewma_alpha <= 1:
            raise ConfigError("ewma_alpha", f"must be within (0, 1], got {self.ewma_alpha!r}")
        if not 0 < self.demand_alpha <= 1:
            raise ConfigError("demand_alpha", f"must be within (0, 1], got {self.demand_alpha!r}")

    def fixed(self, max_batch_size: int | None = None) -> BatcherSettings:
        """A copy that does not learn, always aiming at ``max_batch_size``."""
        size = self.max_batch_size if max_batch_size is None else max_batch_size
        return replace(self, learn_batch_size=False, max_batch_size=size)
