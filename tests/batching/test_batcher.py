"""The async driver, on the manual clock: batches, delay, overload, cancellation, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Sequence

import pytest

from prsm.performance.batching import BatcherSettings, DynamicBatcher
from prsm.performance.clock import ManualClock
from prsm.performance.errors import OverloadedError, PRSMError
from prsm.performance.monitoring import MetricsRegistry


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


class Model:
    """A fake model: records batches; optionally holds them until released."""

    def __init__(self, clock: ManualClock, *, hold: bool = False, cost: float = 0.0) -> None:
        self.clock = clock
        self.hold = hold
        self.cost = cost
        self.batches: list[list[str]] = []
        self.gates: list[asyncio.Future[None]] = []

    async def __call__(self, key: Hashable, items: list[str]) -> Sequence[object]:
        self.batches.append(list(items))
        if self.hold:
            gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.gates.append(gate)
            await gate
        self.clock.advance(self.cost)
        out: list[object] = []
        for x in items:
            out.append(ValueError(f"bad item {x}") if x.startswith("bad") else x.upper())
        return out

    def release(self) -> None:
        gate = self.gates.pop(0)
        gate.set_result(None)


def fixed(**kw: object) -> BatcherSettings:
    base: dict[str, object] = {"max_batch_size": 4, "max_queue_delay": 0.01, "max_queue_size": 8}
    base.update(kw)
    return BatcherSettings(**base).fixed()  # type: ignore[arg-type]


async def test_a_full_batch_leaves_at_once(clock: ManualClock) -> None:
    model = Model(clock)
    b = DynamicBatcher(model, fixed(), clock=clock)
    results = await asyncio.gather(*(b.submit(x) for x in "abcd"))
    assert results == ["A", "B", "C", "D"]
    assert model.batches == [["a", "b", "c", "d"]]
    assert clock.monotonic() == 0.0


async def test_a_partial_batch_leaves_after_the_delay(clock: ManualClock) -> None:
    model = Model(clock)
    b = DynamicBatcher(model, fixed(), clock=clock)
    tasks = [asyncio.create_task(b.submit(x)) for x in "ab"]
    await settle()
    assert model.batches == []
    clock.advance(0.009)
    await settle()
    assert model.batches == []
    clock.advance(0.002)
    await settle()
    assert model.batches == [["a", "b"]]
    assert await asyncio.gather(*tasks) == ["A", "B"]


async def test_with_two_idle_workers_a_partial_batch_runs_as_two(clock: ManualClock) -> None:
    model = Model(clock, hold=True)
    b = DynamicBatcher(model, fixed(max_batch_size=8, max_concurrent_batches=2), clock=clock)
    tasks = [asyncio.create_task(b.submit(x)) for x in "abcde"]
    await settle()
    clock.advance(0.01)
    await settle()
    assert model.batches == [["a", "b", "c"], ["d", "e"]]  # side by side, not 5 on one
    assert b.stats()["in_flight_batches"] == 2
    model.release()
    model.release()
    assert await asyncio.gather(*tasks) == ["A", "B", "C", "D", "E"]


async def test_demand_counts_waiting_and_running_items(clock: ManualClock) -> None:
    model = Model(clock, hold=True)
    settings = fixed(max_batch_size=2, max_concurrent_batches=2, demand_alpha=1.0)
    b = DynamicBatcher(model, settings, clock=clock)
    tasks = [asyncio.create_task(b.submit(x)) for x in "abcdef"]
    await settle()
    assert len(model.batches) == 2
    # items arrive one by one: the second batch left with 2 waiting and 2 running
    assert b.stats()["demand"] == 4
    model.release()
    await settle()
    # the third left with 2 waiting and 2 running, but 6 were outstanding since the second
    # left (before the first finished): the peak is the demand
    assert len(model.batches) == 3 and b.stats()["demand"] == 6
    for _ in range(2):
        model.release()
        await settle()
    assert await asyncio.gather(*tasks) == list("ABCDEF")


async def test_keys_never_share_a_batch(clock: ManualClock) -> None:
    model = Model(clock)
    b = DynamicBatcher(model, fixed(max_batch_size=2), clock=clock)
    out = await asyncio.gather(
        b.submit("a", key="m1"), b.submit("b", key="m2"), b.submit("c", key="m1"),
        b.submit("d", key="m2"),
    )  # fmt: skip
    assert out == ["A", "B", "C", "D"]
    assert sorted(model.batches) == [["a", "c"], ["b", "d"]]


async def test_a_full_queue_rejects_at_once(clock: ManualClock) -> None:
    model = Model(clock, hold=True)
    b = DynamicBatcher(model, fixed(max_batch_size=2, max_queue_size=4), clock=clock)
    running = [asyncio.create_task(b.submit(x)) for x in "ab"]
    await settle()
    waiting = [asyncio.create_task(b.submit(x)) for x in "cdef"]
    await settle()
    with pytest.raises(OverloadedError) as err:
        await b.submit("g")
    assert err.value.limit == 4
    assert "overloaded" in str(err.value)
    assert b.stats()["rejected"] == 1
    model.release()
    await settle()
    model.release()
    await settle()
    model.release()
    assert await asyncio.gather(*running, *waiting) == list("ABCDEF")


async def test_a_cancelled_caller_leaves_the_queue_without_hurting_others(
    clock: ManualClock,
) -> None:
    model = Model(clock, hold=True)
    b = DynamicBatcher(model, fixed(max_batch_size=2), clock=clock)
    first = [asyncio.create_task(b.submit(x)) for x in "ab"]
    await settle()
    gone = asyncio.create_task(b.submit("x"))
    kept = [asyncio.create_task(b.submit(x)) for x in "cd"]
    await settle()
    gone.cancel()
    await settle()
    assert b.stats()["queue_depth"] == 2
    model.release()
    await settle()
    model.release()
    assert await asyncio.gather(*first, *kept) == ["A", "B", "C", "D"]
    assert model.batches == [["a", "b"], ["c", "d"]]
    assert gone.cancelled()
    assert b.stats()["cancelled"] == 1


async def test_a_caller_timing_out_mid_batch_drops_only_its_result(clock: ManualClock) -> None:
    model = Model(clock, hold=True)
    b = DynamicBatcher(model, fixed(max_batch_size=2), clock=clock)
    impatient = asyncio.create_task(b.submit("a"))
    patient = asyncio.create_task(b.submit("b"))
    await settle()
    impatient.cancel()
    await settle()
    model.release()
    assert await patient == "B"
    assert impatient.cancelled()


async def test_a_failing_item_fails_only_itself(clock: ManualClock) -> None:
    model = Model(clock)
    b = DynamicBatcher(model, fixed(), clock=clock)
    out = await asyncio.gather(
        *(b.submit(x) for x in ["a", "bad1", "c", "d"]), return_exceptions=True
    )
    assert out[0] == "A" and out[2] == "C" and out[3] == "D"
    assert isinstance(out[1], ValueError)
    assert b.stats()["failed"] == 1


async def test_a_raising_batch_fails_each_of_its_items(clock: ManualClock) -> None:
    async def broken(key: Hashable, items: list[str]) -> list[str]:
        raise RuntimeError("model crashed")

    b = DynamicBatcher(broken, fixed(max_batch_size=2), clock=clock)
    out = await asyncio.gather(b.submit("a"), b.submit("b"), return_exceptions=True)
    assert all(isinstance(e, RuntimeError) and "crashed" in str(e) for e in out)


async def test_a_wrong_number_of_results_is_an_error(clock: ManualClock) -> None:
    async def short(key: Hashable, items: list[str]) -> list[str]:
        return items[:1]

    b = DynamicBatcher(short, fixed(max_batch_size=2), clock=clock)
    out = await asyncio.gather(b.submit("a"), b.submit("b"), return_exceptions=True)
    assert all(isinstance(e, PRSMError) and "1 results for 2 items" in str(e) for e in out)


async def test_submit_many_admits_all_or_none_and_fails_as_one(clock: ManualClock) -> None:
    model = Model(clock)
    b = DynamicBatcher(model, fixed(max_batch_size=2, max_queue_size=4), clock=clock)
    with pytest.raises(OverloadedError, match="exceed"):
        await b.submit_many(list("abcde"))
    assert await b.submit_many(list("abcd")) == list("ABCD")
    with pytest.raises(ValueError, match="bad2"):
        await b.submit_many(["a", "bad2"])


async def test_priorities_serve_higher_first(clock: ManualClock) -> None:
    model = Model(clock, hold=True)
    settings = fixed(max_batch_size=1, priorities=True)
    b = DynamicBatcher(model, settings, clock=clock)
    tasks = [asyncio.create_task(b.submit("first"))]
    await settle()
    tasks += [asyncio.create_task(b.submit(x, priority=p)) for x, p in [("lo", 0), ("hi", 5)]]
    await settle()
    for _ in range(3):
        model.release()
        await settle()
    await asyncio.gather(*tasks)
    assert model.batches == [["first"], ["hi"], ["lo"]]


async def test_learned_size_stats_and_metrics(clock: ManualClock) -> None:
    model = Model(clock, cost=0.01)
    metrics = MetricsRegistry()
    settings = BatcherSettings(max_batch_size=8, max_queue_delay=0.01, min_samples=1)
    b = DynamicBatcher(model, settings, name="w0", metrics=metrics, clock=clock)
    for _ in range(6):
        call = asyncio.ensure_future(b.submit_many([str(i) for i in range(8)]))
        while not call.done():  # what a smaller target leaves behind waits for the delay
            await settle()
            clock.advance(0.01)
        assert call.result() == [str(i) for i in range(8)]
    stats = b.stats()
    assert stats["learning"] is True
    assert {p["size"] for p in stats["curve"]} == {1, 2, 4, 8}
    assert stats["chosen_batch_size"] == 8  # constant cost per batch: the biggest wins
    assert stats["items"] == 48
    text = metrics.exposition().decode()
    assert 'prsm_batch_size_count{batcher="w0"}' in text
    assert 'prsm_batch_chosen_size{batcher="w0"} 8.0' in text


async def test_close_fails_waiting_items_clearly(clock: ManualClock) -> None:
    model = Model(clock)
    b = DynamicBatcher(model, fixed(), clock=clock)
    task = asyncio.create_task(b.submit("a"))
    await settle()
    await b.close()
    with pytest.raises(PRSMError, match="closed"):
        await task
    with pytest.raises(PRSMError, match="closed"):
        await b.submit("b")


async def test_waits_report_each_items_time_in_the_queue(clock: ManualClock) -> None:
    model = Model(clock, cost=0.5)  # the batch's own run time is not queueing
    b = DynamicBatcher(model, fixed(), clock=clock)
    waits: list[float] = []
    task = asyncio.create_task(b.submit_many(["a", "b"], waits=waits))
    await settle()
    clock.advance(0.011)  # past max_queue_delay: the partial batch leaves
    await settle()
    assert await task == ["A", "B"]
    assert waits == [pytest.approx(0.011), pytest.approx(0.011)]
