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

**The p99 bound.** A request that finds every batch slot busy waits for the batch ahead of it,
then runs in its own: ``max_queue_delay`` + 2 × batch time at most — if it gets into the next
batches at all. With closed-loop clients the outstanding items (waiting plus running; a
running mean, :meth:`BatchTuner.note_demand`, or the queue now if longer) come back together:
when they outnumber what one batch per slot holds (``max_concurrent_batches`` × size) some
wait two batches or more, and a batch larger than its share leaves other slots idle.
:func:`bound_batch_size` (pure) then aims at ``ceil(outstanding / slots)`` — the next batches,
one per slot, hold every outstanding item — when that size's measured throughput is within
``latency_tolerance`` of the best; when it is not (e.g. 128 clients on two workers, where
batches of 64 are much slower) the throughput choice stands.

The budget caps a batch's time while the queue is short. When more items wait than the
budget's size — now, or on average when recent batches left (:meth:`BatchTuner.note_demand`)
— and a larger measured size does more work per second (the budget binds), the tuner aims at
that larger size: with a backlog, draining it fastest is what lowers everyone's
latency, and a small budget size would only make the queue grow.

:class:`BatchTuner` holds that state. :meth:`BatchTuner.target` tells the driver which size to
aim at given how many items wait: an unmeasured bucket that the queue can fill is measured
first (largest first); then the bound size if there is one (no probing meanwhile: a probe
would split a returning group of closed-loop clients); else, every ``reprobe_every``
batches, a neighbour of the chosen size, re-measured so the curve follows the load; else the
backlog size when a backlog waits, else the chosen size. :meth:`BatchTuner.profile` measures
the curve up front (a warm-up) by running batches of every bucket size (several at once when
several workers serve one batcher; small sizes repeated until ``min_items`` ran).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from ._settings import BatcherSettings


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


def bound_batch_size(
    points: Sequence[CurvePoint],
    *,
    demand: float,
    slots: int,
    ceiling: int,
    latency_budget: float,
    tolerance: float,
    min_samples: int,
) -> int | None:
    """``ceil(demand / slots)``: the size at which the next batches, one per slot, hold every
    outstanding item — when it is at most ``ceiling`` and its measured throughput is within
    ``tolerance`` of the best within the latency budget; ``None`` otherwise (e.g. only a much
    slower size would hold them). A size between two buckets counts the slower of the two
    (the trusted buckets within the budget just below and just above it; both must exist).
    As in :func:`best_batch_size`, when no trusted size fits the budget it is ignored."""
    need = max(1, math.ceil(demand / slots))
    trusted = [p for p in points if p.batches >= min_samples]
    if need > ceiling or not trusted:
        return None
    within = [p for p in trusted if p.mean_seconds <= latency_budget] or trusted
    above = [p for p in within if p.size >= need]
    below = [p for p in within if p.size <= need]
    if not above or not below:
        return None
    slower = min(
        min(above, key=lambda p: p.size).throughput, max(below, key=lambda p: p.size).throughput
    )
    best = max(p.throughput for p in within)
    return need if slower >= (1.0 - tolerance) * best else None


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
        self._curve: list[CurvePoint] = []
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
        self._curve = curve
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
        if self._chosen is None:
            return fillable
        bound = self._bound_size(max(float(available), self._demand))
        if bound is not None:
            # every outstanding item in the next batches: p99 within its bound. No probe
            # meanwhile: a smaller probe batch would leave the rest of a returning group
            # waiting a whole batch, a larger one would wait for items that are not coming
            return bound
        if self._probe is not None and self._probe <= fillable:
            return self._probe
        if (
            self._unbounded is not None
            and self._unbounded > self._chosen
            and max(available, self._demand) > self._chosen
        ):
            # a backlog: drain it at the best rate (and let the batch fill to that size for up
            # to max_queue_delay, so a burst arriving item by item leaves as one batch)
            return self._unbounded
        return self._chosen

    def note_demand(self, outstanding: int) -> None:
        """Record how many items were outstanding (waiting or running) when a batch left (a
        running mean of the load), so a backlog that returns item by item — closed-loop
        clients — is still seen as one."""
        if outstanding < 0:
            raise ValueError(f"outstanding: must be >= 0, got {outstanding}")
        self._demand += self.settings.demand_alpha * (outstanding - self._demand)

    def _bound_size(self, demand: float) -> int | None:
        if self._chosen is None or not self.settings.latency_tolerance:
            return None
        return bound_batch_size(
            self._curve,
            demand=demand,
            slots=self.settings.max_concurrent_batches,
            ceiling=self.settings.max_batch_size,
            latency_budget=self.settings.latency_budget,
            tolerance=self.settings.latency_tolerance,
            min_samples=self.settings.min_samples,
        )

    @property
    def demand(self) -> float:
        """Running mean of the items outstanding (waiting or running) when a batch left."""
        return self._demand

    @property
    def bound_size(self) -> int | None:
        """The size aimed at to keep p99 within its bound under the running demand, if any."""
        return self._bound_size(self._demand)

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
        self._curve = []
        self._demand = 0.0

    # -- warm-up --------------------------------------------------------------------------
    async def profile(
        self,
        run: Callable[[int], Awaitable[object]],
        *,
        repeats: int | None = None,
        parallel: int = 1,
        min_items: int = 0,
        timer: Callable[[], float] = time.perf_counter,
    ) -> list[CurvePoint]:
        """Measure every bucket size ``repeats`` times (default ``min_samples``) by awaiting
        ``run(size)``, which must run one batch of that many items; returns the curve. With
        ``parallel`` > 1 that many batches run at once each time (one per worker), each timed
        on its own, as they compete for the hardware when serving. ``min_items``: small
        sizes are repeated until at least that many items ran, so every size is measured on
        as much text (a batch's time depends on its longest text: a few small batches are a
        noisy estimate)."""
        if parallel < 1:
            raise ValueError(f"parallel: must be >= 1, got {parallel}")
        if min_items < 0:
            raise ValueError(f"min_items: must be >= 0, got {min_items}")
        repeat = repeats or self.settings.min_samples

        async def timed(size: int) -> float:
            t0 = timer()
            await run(size)
            return timer() - t0

        for size in self.buckets:
            times = max(repeat, math.ceil(min_items / (size * parallel)))
            for _ in range(times):
                for seconds in await asyncio.gather(*(timed(size) for _ in range(parallel))):
                    self.observe(size, seconds)
        return self.curve()
