"""The dynamic batcher: a thin async driver around :mod:`.policy` and :class:`.BatchTuner`.

Callers ``await batcher.submit(item, key=...)`` (or :meth:`DynamicBatcher.submit_many`); items
queue per compatibility key; whenever something changes the driver takes a snapshot, asks
:func:`.policy.decide`, and either sends a batch to ``run_batch`` or arms one timer. Nothing
else runs in the background.

``run_batch(key, items)`` returns one result per item, in order; a result that is an exception
fails only its item. If ``run_batch`` raises, every item of that batch fails with that error.
A caller that is cancelled (or times out) takes its waiting items out of the queue; if its
batch already runs, its results are dropped and nobody else is affected. A full queue rejects
at once with :class:`~prsm.performance.errors.OverloadedError`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from ..clock import Clock, SystemClock
from ..errors import OverloadedError, PRSMError
from ..monitoring._registry import MetricsRegistry
from ._policy import Flush, KeySnapshot, QueueSnapshot, admit, decide
from ._settings import BatcherSettings
from ._tuner import BatchTuner

T = TypeVar("T")
R = TypeVar("R")

RunBatch = Callable[[Hashable, list[T]], Awaitable[Sequence[R | BaseException]]]

SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

_WAITING, _RUNNING, _GONE = 0, 1, 2


class _Item(Generic[T, R]):
    __slots__ = ("enqueued", "future", "payload", "priority", "started", "state")

    def __init__(self, payload: T, priority: int, enqueued: float, future: asyncio.Future[R]):
        self.payload = payload
        self.priority = priority
        self.enqueued = enqueued
        self.future = future
        self.state = _WAITING
        self.started = -1.0  # when its batch began to run


class _KeyQueue(Generic[T, R]):
    """One key's waiting items: a heap by (−priority, arrival) and the arrival order."""

    __slots__ = ("arrivals", "depth", "heap")

    def __init__(self) -> None:
        self.heap: list[tuple[int, int, _Item[T, R]]] = []
        self.arrivals: deque[_Item[T, R]] = deque()
        self.depth = 0

    def oldest(self) -> float:
        while self.arrivals and self.arrivals[0].state != _WAITING:
            self.arrivals.popleft()
        return self.arrivals[0].enqueued

    def top_priority(self) -> int:
        while self.heap and self.heap[0][2].state != _WAITING:
            heapq.heappop(self.heap)
        return -self.heap[0][0]

    def pop(self, n: int) -> list[_Item[T, R]]:
        out: list[_Item[T, R]] = []
        while self.heap and len(out) < n:
            item = heapq.heappop(self.heap)[2]
            if item.state == _WAITING:
                item.state = _RUNNING
                out.append(item)
        self.depth -= len(out)
        return out


def _retrieve(fut: asyncio.Future[Any]) -> None:
    # mark an item's exception as seen: its caller may have stopped listening
    if not fut.cancelled():
        fut.exception()


class DynamicBatcher(Generic[T, R]):
    """Batches items per key for ``run_batch``; see the module docstring."""

    def __init__(
        self,
        run_batch: RunBatch[T, R],
        settings: BatcherSettings | None = None,
        *,
        name: str = "batcher",
        tuner: BatchTuner | None = None,
        metrics: MetricsRegistry | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings or BatcherSettings()
        self.name = name
        self.tuner = tuner or BatchTuner(self.settings)
        self._run_batch = run_batch
        self._clock = clock or SystemClock()
        self._queues: dict[Hashable, _KeyQueue[T, R]] = {}
        self._seq = itertools.count()
        self._in_flight = 0
        self._in_flight_items = 0
        self._free_since = float("-inf")  # when a slot last came free after all were busy
        self._peak_outstanding = 0  # most items waiting or running since the last batch left
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._timer_at = 0.0
        self._closed = False
        self._counts = {"batches": 0, "items": 0, "rejected": 0, "cancelled": 0, "failed": 0}
        self._busy_seconds = 0.0
        self._size_counts: dict[int, int] = {}
        self._last_batch_seconds: float | None = None
        m = metrics or MetricsRegistry()
        self._m_size = m.histogram(
            "batch_size", "Items per batch sent to a model", ["batcher"], buckets=SIZE_BUCKETS
        ).labels(name)
        self._m_seconds = m.histogram(
            "batch_seconds", "Seconds one batch took", ["batcher"]
        ).labels(name)
        self._m_depth = m.gauge("batch_queue_depth", "Items waiting to be batched", ["batcher"])
        self._m_depth_child = self._m_depth.labels(name)
        self._m_chosen = m.gauge(
            "batch_chosen_size", "Batch size the tuner aims at", ["batcher"]
        ).labels(name)
        self._m_rejected = m.counter(
            "batch_rejected", "Items rejected because the queue was full", ["batcher"]
        ).labels(name)
        self._m_cancelled = m.counter(
            "batch_cancelled", "Items whose caller gave up before they ran", ["batcher"]
        ).labels(name)

    # -- the public surface ---------------------------------------------------------------
    async def submit(self, item: T, *, key: Hashable = None, priority: int = 0) -> R:
        """Queue one item and wait for its result."""
        return (await self.submit_many([item], key=key, priority=priority))[0]

    async def submit_many(
        self,
        items: Sequence[T],
        *,
        key: Hashable = None,
        priority: int = 0,
        waits: list[float] | None = None,
    ) -> list[R]:
        """Queue several items (all admitted or none) and wait for all their results.

        The first item that fails raises its error; the request's other waiting items leave
        the queue then. ``waits``, when given, receives each item's time in the queue (from
        its arrival until its batch began to run), in the items' order.
        """
        if self._closed:
            raise PRSMError(f"batcher {self.name!r} is closed")
        if not items:
            return []
        rejection = admit(self._snapshot(), len(items), self.settings)
        if rejection is not None:
            self._counts["rejected"] += len(items)
            self._m_rejected.inc(len(items))
            raise OverloadedError(
                f"batcher {self.name!r} ({rejection.reason})",
                rejection.limit,
                retry_after=rejection.retry_after,
            )
        loop = asyncio.get_running_loop()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _KeyQueue()
        now = self._clock.monotonic()
        prio = priority if self.settings.priorities else 0
        mine: list[_Item[T, R]] = []
        for payload in items:
            fut: asyncio.Future[R] = loop.create_future()
            fut.add_done_callback(_retrieve)
            entry = _Item(payload, prio, now, fut)
            heapq.heappush(queue.heap, (-prio, next(self._seq), entry))
            queue.arrivals.append(entry)
            mine.append(entry)
        queue.depth += len(mine)
        depth = self._depth()
        self._peak_outstanding = max(self._peak_outstanding, depth + self._in_flight_items)
        self._m_depth_child.set(depth)
        self._pump()
        try:
            results = [await entry.future for entry in mine]
        finally:
            self._abandon(mine, key)
        if waits is not None:
            waits.extend(entry.started - entry.enqueued for entry in mine)
        return results

    def stats(self) -> dict[str, Any]:
        """Chosen size, measured curve, queue depth, batch sizes seen, counters."""
        learning = self.settings.learn_batch_size
        chosen = self.tuner.chosen_size if learning else None
        return {
            "name": self.name,
            "learning": self.settings.learn_batch_size,
            "max_batch_size": self.settings.max_batch_size,
            "chosen_batch_size": chosen or self.settings.max_batch_size,
            "backlog_batch_size": self.tuner.backlog_size if learning else None,
            "bound_batch_size": self.tuner.bound_size if learning else None,
            "queue_depth": self._depth(),
            "demand": round(self.tuner.demand, 2),
            "in_flight_batches": self._in_flight,
            "last_batch_seconds": self._last_batch_seconds,
            "batch_seconds_total": self._busy_seconds,
            **self._counts,
            "batch_sizes": dict(sorted(self._size_counts.items())),
            "curve": [p.as_dict() for p in self.tuner.curve()],
        }

    async def close(self) -> None:
        """Stop: waiting items fail with a clear error; running batches are cancelled."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        error = PRSMError(f"batcher {self.name!r} was closed")
        for queue in self._queues.values():
            for _, _, entry in queue.heap:
                if entry.state == _WAITING and not entry.future.done():
                    entry.future.set_exception(error)
                entry.state = _GONE
            queue.heap.clear()
            queue.arrivals.clear()
            queue.depth = 0
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._m_depth_child.set(0)

    # -- the driver -----------------------------------------------------------------------
    def _depth(self) -> int:
        return sum(q.depth for q in self._queues.values())

    @property
    def queue_depth(self) -> int:
        """Items waiting to be batched (what a worker node reports as its queue)."""
        return self._depth()

    def _snapshot(self) -> QueueSnapshot:
        keys = []
        for key, queue in list(self._queues.items()):
            if queue.depth <= 0:
                del self._queues[key]
                continue
            keys.append(
                KeySnapshot(
                    key=key,
                    depth=queue.depth,
                    oldest_enqueued=queue.oldest(),
                    target=self.tuner.target(queue.depth),
                    top_priority=queue.top_priority() if self.settings.priorities else 0,
                )
            )
        target = self.tuner.chosen_size or self.settings.max_batch_size
        return QueueSnapshot(
            keys=keys,
            in_flight=self._in_flight,
            batch_seconds=self.tuner.expected_seconds(target),
            free_since=self._free_since,
        )

    def _pump(self) -> None:
        while not self._closed:
            action = decide(self._snapshot(), self._clock.monotonic(), self.settings)
            if isinstance(action, Flush):
                self._dispatch(action)
                continue
            self._arm_timer(action.seconds)
            return

    def _arm_timer(self, seconds: float | None) -> None:
        if seconds is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        at = self._clock.monotonic() + seconds
        if self._timer is not None:
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer_at = at
        self._timer = asyncio.get_running_loop().create_task(self._wake(seconds))

    async def _wake(self, seconds: float) -> None:
        await self._clock.sleep(seconds)
        self._timer = None
        self._pump()

    def _dispatch(self, action: Flush) -> None:
        queue = self._queues[action.key]
        # the peak since the last batch left: closed-loop clients of a finished batch come
        # back one by one, and a batch may leave before all of them are back
        outstanding = self._depth() + self._in_flight_items
        self.tuner.note_demand(max(self._peak_outstanding, outstanding))
        self._peak_outstanding = outstanding
        batch = queue.pop(action.size)
        self._m_depth_child.set(self._depth())
        if not batch:  # depth said items wait but none do: a bookkeeping bug, say so loudly
            queue.depth = 0
            raise PRSMError(f"batcher {self.name!r}: key {action.key!r} had no waiting items")
        self._in_flight += 1
        self._in_flight_items += len(batch)
        self._m_chosen.set(self.tuner.chosen_size or self.settings.max_batch_size)
        task = asyncio.get_running_loop().create_task(self._run(action.key, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: Hashable, batch: list[_Item[T, R]]) -> None:
        size = len(batch)
        t0 = self._clock.monotonic()
        for entry in batch:
            entry.started = t0
        try:
            results = await self._run_batch(key, [entry.payload for entry in batch])
            if len(results) != size:
                raise PRSMError(
                    f"batcher {self.name!r}: run_batch returned {len(results)} results "
                    f"for {size} items"
                )
        except Exception as exc:  # the whole batch failed: every item gets the error
            self._counts["failed"] += size
            for entry in batch:
                entry.state = _GONE
                if not entry.future.done():
                    entry.future.set_exception(exc)
            return
        finally:
            if self._in_flight == self.settings.max_concurrent_batches:
                self._free_since = self._clock.monotonic()
            self._in_flight -= 1
            self._in_flight_items -= size
            if not self._closed:
                asyncio.get_running_loop().call_soon(self._pump)
        seconds = self._clock.monotonic() - t0
        self.tuner.observe(size, seconds)
        self._last_batch_seconds = seconds
        self._busy_seconds += seconds
        self._counts["batches"] += 1
        self._counts["items"] += size
        self._size_counts[size] = self._size_counts.get(size, 0) + 1
        self._m_size.observe(size)
        self._m_seconds.observe(seconds)
        for entry, result in zip(batch, results, strict=True):
            entry.state = _GONE
            if entry.future.done():
                continue
            if isinstance(result, BaseException):
                self._counts["failed"] += 1
                entry.future.set_exception(result)
            else:
                entry.future.set_result(result)

    def _abandon(self, mine: list[_Item[T, R]], key: Hashable) -> None:
        """After a caller returns or gives up: its still-waiting items leave the queue."""
        queue = self._queues.get(key)
        gone = 0
        for entry in mine:
            if entry.state == _WAITING:
                entry.state = _GONE
                gone += 1
            if not entry.future.done():
                entry.future.cancel()
        if gone:
            self._counts["cancelled"] += gone
            self._m_cancelled.inc(gone)
            if queue is not None:
                queue.depth -= gone
            self._m_depth_child.set(self._depth())
            if not self._closed:
                self._pump()
