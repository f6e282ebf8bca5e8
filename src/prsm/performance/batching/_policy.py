"""The batching decision, as a pure function of a queue snapshot and ``now``.

The driver (:class:`~prsm.performance.batching.DynamicBatcher`) asks :func:`admit` before it
queues new items (→ ``None`` or :class:`Reject`) and :func:`decide` whenever something
changes (→ :class:`Flush` a batch now, or :class:`Wait` that long or until something
happens), then carries the action out — the way tenacity's ``iter()`` returns actions for
its loop to run. Nothing here reads a clock or does I/O, so tests drive it with plain numbers.

Rules (Triton's and Ray Serve's): a key's batch leaves when it holds its target size, when its
oldest item has waited ``max_queue_delay`` while a batch slot was free to take it, or
(priorities on) when it holds an item at ``urgent_priority`` or above; among ready keys the
one with the oldest item goes first; no batch leaves while ``max_concurrent_batches`` are
running; past ``max_queue_size`` waiting items, new ones are rejected at once. A partial
batch that leaves on its delay while several batch slots are free (several workers idle) is
split evenly across them: the items then run side by side instead of one slot taking all of
them while the others idle.

The delay counts from when the oldest item arrived or a slot last came free, whichever is
later: items that waited because every slot was busy get ``max_queue_delay`` for others to
join them once one frees. Otherwise a few stragglers would leave alone the moment a slot
frees, just before the clients of the batch that freed it send their next requests, and
closed-loop clients split into ever smaller groups. A request still waits at most for the
batch ahead of it, the delay, and its own batch: the ``max_queue_delay`` + 2 × batch time
bound.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from ._settings import BatcherSettings


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    """One compatibility key's queue: ``depth`` waiting items, the oldest queued at
    ``oldest_enqueued`` (monotonic seconds), the highest ``top_priority`` among them, and the
    ``target`` batch size the tuner aims at for it right now."""

    key: Hashable
    depth: int
    oldest_enqueued: float
    target: int
    top_priority: int = 0


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """Every non-empty key's queue, how many batches run, (when measured) how long a batch
    of the target size takes (``batch_seconds``, used for ``retry_after``), and when a batch
    slot last came free after all were busy (``free_since``, monotonic seconds)."""

    keys: Sequence[KeySnapshot]
    in_flight: int = 0
    batch_seconds: float | None = None
    free_since: float = float("-inf")

    @property
    def depth(self) -> int:
        """Items waiting across all keys."""
        return sum(k.depth for k in self.keys)


@dataclass(frozen=True, slots=True)
class Flush:
    """Send a batch of up to ``size`` items of ``key`` now; ``reason``: full, delay or urgent."""

    key: Hashable
    size: int
    reason: str


@dataclass(frozen=True, slots=True)
class Wait:
    """Decide again after ``seconds``, or when something changes (``None``: only then)."""

    seconds: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse the arriving items at once: the queue is full; try again after ``retry_after``."""

    reason: str
    limit: int
    retry_after: float


def admit(snapshot: QueueSnapshot, incoming: int, settings: BatcherSettings) -> Reject | None:
    """May ``incoming`` more items wait? ``None`` if so, else why not."""
    limit = settings.max_queue_size
    if incoming > limit:
        return Reject(
            f"{incoming} items in one request exceed the queue's limit of {limit}", limit, 0.0
        )
    depth = snapshot.depth
    if depth + incoming <= limit:
        return None
    retry_after = 1.0
    if snapshot.batch_seconds is not None:
        targets = [k.target for k in snapshot.keys] or [settings.max_batch_size]
        batches_ahead = math.ceil(depth / max(1, min(targets)))
        parallel = settings.max_concurrent_batches
        drain = snapshot.batch_seconds * batches_ahead / parallel
        retry_after = max(settings.max_queue_delay, drain)
    return Reject(f"{depth} items are waiting, the limit is {limit}", limit, retry_after)


def decide(snapshot: QueueSnapshot, now: float, settings: BatcherSettings) -> Flush | Wait:
    """What the driver should do now with the queue ``snapshot``."""
    if snapshot.in_flight >= settings.max_concurrent_batches:
        return Wait(None, "busy")
    free = settings.max_concurrent_batches - snapshot.in_flight
    ready: tuple[float, int, Flush] | None = None
    next_deadline: float | None = None
    urgent = settings.urgent_priority if settings.priorities else None
    for index, k in enumerate(snapshot.keys):
        if k.depth <= 0:
            continue
        target = max(1, min(k.target, settings.max_batch_size))
        due = max(k.oldest_enqueued, snapshot.free_since) + settings.max_queue_delay
        if k.depth >= target:
            reason = "full"
        elif urgent is not None and k.top_priority >= urgent:
            reason = "urgent"
        elif now >= due:
            reason = "delay"
        else:
            if next_deadline is None or due < next_deadline:
                next_deadline = due
            continue
        size = min(k.depth, target)
        if reason != "full" and free > 1:
            size = math.ceil(size / free)  # the other free slots take the rest next
        rank = (k.oldest_enqueued, index)
        if ready is None or rank < ready[:2]:
            ready = (k.oldest_enqueued, index, Flush(k.key, size, reason))
    if ready is not None:
        return ready[2]
    if next_deadline is None:
        return Wait(None, "empty")
    return Wait(max(0.0, next_deadline - now), "filling")
