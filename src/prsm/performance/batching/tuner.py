"""Learning the batch size: measure time per batch size, pick the best within a latency budget.

Sizes are grouped into buckets (powers of two up to ``max_batch_size``, plus that size); for
each bucket the tuner keeps running means (EWMA) of the batch size and of the seconds a batch
took. Throughput of a bucket is ``mean_size / mean_seconds``. :func:`best_batch_size` (pure)
picks, among buckets measured at least ``min_samples`` times whose batches take at most
``latency_budget``, the largest whose throughput is within ``throughput_tolerance`` of the
best. Measured throughput is noisy and flat near its peak; of the sizes that do the same work
per second, the largest drains a burst in the fewest batches (so a queue of N clients waits
about one batch, not N / size). On a CPU throughput falls past a moderate size and that size
wins; on a GPU it grows until the latency budget binds. When no size meets the budget, the one
with the most throughput is chosen (nothing can meet it; the fastest drain is then best).

The budget caps a batch's time while the queue is short. When more items wait than the
budget's size — now, or on average when recent batches left (:meth:`BatchTuner.note_demand`)
— and a larger measured size does more work per second (the budget binds), the tuner aims at
that larger size: with a backlog, draining it fastest is what lowers everyone's
latency, and a small budget size would only make the queue grow.

:class:`BatchTuner` holds that state. :meth:`BatchTuner.target` tells the driver which size to
aim at given how many items wait: an unmeasured bucket that the queue can fill is measured
first (largest first), then the chosen size; every ``reprobe_every`` batches it re-measures a
neighbour of the chosen size so the curve follows the load. :meth:`BatchTuner.profile` measures
the curve up front (a warm-up) by running batches of every bucket size.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from .settings import BatcherSettings


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """A bucket of the measured curve: ``batches`` measured, their mean size and seconds."""

    size: int
    batches: int
    mean_size: float
    mean_seconds: float

    @property
    def throughput(self) -> float:
        """Items per second at this size."""
        return self.mean_size / self.mean_seconds if self.mean_seconds > 0 else float("inf")

    def as_dict(self) -> dict[str, float | int]:
        return {
            "size": self.size,
            "batches": self.batches,
            "mean_size": round(self.mean_size, 3),
            "mean_seconds": self.mean_seconds,
            "items_per_second": round(self.throughput, 3),
        }


def bucket_sizes(max_batch_size: int) -> tuple[int, ...]:
    """Powers of two below ``max_batch_size``, then ``max_batch_size`` itself."""
    sizes = []
    size = 1
    while size < max_batch_size:
        sizes.append(size)
        size *= 2
    sizes.append(max_batch_size)
    return tuple(sizes)


def bucket_of(size: int, buckets: Sequence[int]) -> int:
    """The largest bucket not above ``size`` (the smallest bucket for smaller sizes)."""
    chosen = buckets[0]
    for b in buckets:
        if b <= size:
            chosen = b
        else:
            break
    return chosen


def best_batch_size(
    points: Sequence[CurvePoint],
    *,
    latency_budget: float,
    tolerance: float,
    min_samples: int,
) -> int | None:
    """The size maximising throughput within the latency budget (``None``: nothing trusted).

    When no trusted size fits the budget, the budget is ignored (nothing can meet it).
    """
    trusted = [p for p in points if p.batches >= min_samples]
    if not trusted:
        return None
    within = [p for p in trusted if p.mean_seconds <= latency_budget] or trusted
    best = max(p.throughput for p in within)
    good = [p for p in within if p.throughput >= (1.0 - tolerance) * best]
    return max(p.size for p in good)


class BatchTuner:
    """Measures the (batch size → batch time) curve as batches run; chooses the size."""

    def __init__(self, settings: BatcherSettings | None = None) -> None:
        self.settings = settings or BatcherSettings()
        self.buckets = bucket_sizes(self.settings.max_batch_size)
        self._stats: dict[int, list[float]] = {}  # bucket -> [batches, mean_size, mean_seconds]
        self._batches = 0
        self._probe: int | None = None
        self._probe_up = True
        self._chosen: int | None = None
        self._unbounded: int | None = None
        self._demand = 0.0

    # -- measurements ---------------------------------------------------------------------
    def observe(self, size: int, seconds: float) -> None:
        """Record that a batch of ``size`` items took ``seconds``."""
        if size < 1 or seconds < 0:
            raise ValueError(f"observe: size must be >= 1 and seconds >= 0, got {size}, {seconds}")
        bucket = bucket_of(size, self.buckets)
        entry = self._stats.get(bucket)
        alpha = self.settings.ewma_alpha
        if entry is None:
            self._stats[bucket] = [1, float(size), float(seconds)]
        else:
            n = entry[0] + 1
            # plain mean until min_samples, then exponentially weighted
            w = max(alpha, 1.0 / n)
            entry[0] = n
            entry[1] += w * (size - entry[1])
            entry[2] += w * (seconds - entry[2])
        self._batches += 1
        if self._probe is not None and bucket == self._probe:
            self._probe = None
        curve = self.curve()
        self._chosen = best_batch_size(
            curve,
            latency_budget=self.settings.latency_budget,
            tolerance=self.settings.throughput_tolerance,
            min_samples=self.settings.min_samples,
        )
        self._unbounded = best_batch_size(
            curve,
            latency_budget=float("inf"),
            tolerance=self.settings.throughput_tolerance,
            min_samples=self.settings.min_samples,
        )
        every = self.settings.reprobe_every
        if every and self._chosen is not None and self._batches % every == 0:
            self._probe = self._neighbour(self._chosen)

    def _neighbour(self, size: int) -> int | None:
        i = self.buckets.index(size) if size in self.buckets else 0
        order = (i + 1, i - 1) if self._probe_up else (i - 1, i + 1)
        self._probe_up = not self._probe_up
        for j in order:
            if 0 <= j < len(self.buckets):
                return self.buckets[j]
        return None

    # -- decisions --------------------------------------------------------------------------
    @property
    def chosen_size(self) -> int | None:
        """The size the measurements favour (``None`` until a size has ``min_samples``)."""
        return self._chosen

    def target(self, available: int) -> int:
        """The batch size to aim at when ``available`` items wait."""
        ceiling = self.settings.max_batch_size
        if not self.settings.learn_batch_size:
            return ceiling
        fillable = max(1, min(available, ceiling))
        unmeasured = [
            b
            for b in self.buckets
            if b <= fillable and self._stats.get(b, (0,))[0] < self.settings.min_samples
        ]
        if unmeasured:
            return max(unmeasured)
        if self._probe is not None and self._probe <= fillable:
            return self._probe
        if self._chosen is None:
            return fillable
        if (
            self._unbounded is not None
            and self._unbounded > self._chosen
            and max(available, self._demand) > self._chosen
        ):
            # a backlog: drain it at the best rate (and let the batch fill to that size for up
            # to max_queue_delay, so a burst arriving item by item leaves as one batch)
            return self._unbounded
        return self._chosen

    def note_demand(self, waiting: int) -> None:
        """Record how many items waited when a batch left (a running mean of the load), so a
        backlog that returns item by item — closed-loop clients — is still seen as one."""
        if waiting < 0:
            raise ValueError(f"waiting: must be >= 0, got {waiting}")
        self._demand += self.settings.ewma_alpha * (waiting - self._demand)

    @property
    def demand(self) -> float:
        """Running mean of the items waiting when a batch left."""
        return self._demand

    @property
    def backlog_size(self) -> int | None:
        """The size aimed at when a backlog waits (most throughput, ignoring the budget)."""
        return self._unbounded

    def expected_seconds(self, size: int) -> float | None:
        """The measured mean time of a batch in ``size``'s bucket, if any."""
        entry = self._stats.get(bucket_of(size, self.buckets))
        return entry[2] if entry is not None else None

    def curve(self) -> list[CurvePoint]:
        """The measured curve, by size."""
        return [
            CurvePoint(size=b, batches=int(e[0]), mean_size=e[1], mean_seconds=e[2])
            for b, e in sorted(self._stats.items())
        ]

    def reset(self) -> None:
        """Forget every measurement."""
        self._stats.clear()
        self._batches = 0
        self._probe = None
        self._chosen = None
        self._unbounded = None
        self._demand = 0.0

    # -- warm-up --------------------------------------------------------------------------
    async def profile(
        self,
        run: Callable[[int], Awaitable[object]],
        *,
        repeats: int | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> list[CurvePoint]:
        """Measure every bucket size ``repeats`` times (default ``min_samples``) by awaiting
        ``run(size)``, which must run one batch of that many items; returns the curve."""
        times = repeats or self.settings.min_samples
        for size in self.buckets:
            for _ in range(times):
                t0 = timer()
                await run(size)
                self.observe(size, timer() - t0)
        return self.curve()
