"""await_with_timeout: same results as ``await``; deadlines share one loop timer."""

from __future__ import annotations

import asyncio

import pytest

from prsm.performance._awaiting import await_with_timeout, resume, stop_task


async def test_immediate_and_suspending_coroutines_give_their_value() -> None:
    async def now() -> int:
        return 1

    async def later() -> int:
        for _ in range(3):
            await asyncio.sleep(0)
        return 2

    assert await await_with_timeout(now(), 1.0) == 1
    assert await await_with_timeout(later(), 1.0) == 2


async def test_errors_before_and_after_suspending_propagate() -> None:
    async def early() -> None:
        raise KeyError("early")

    async def late() -> None:
        await asyncio.sleep(0)
        raise KeyError("late")

    with pytest.raises(KeyError, match="early"):
        await await_with_timeout(early(), 1.0)
    with pytest.raises(KeyError, match="late"):
        await await_with_timeout(late(), 1.0)


async def test_a_hang_times_out_and_the_coroutine_sees_the_cancellation() -> None:
    cleaned: list[bool] = []

    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(True)

    with pytest.raises(TimeoutError):  # no time at all: the timer fires on the next loop turn
        await await_with_timeout(hang(), 0.0)
    assert cleaned == [True]


async def test_outer_cancellation_reaches_the_coroutine() -> None:
    started = asyncio.Event()
    cleaned: list[bool] = []

    async def hang() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(True)

    task = asyncio.create_task(await_with_timeout(hang(), 60.0))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == [True]


async def test_other_awaitables_work() -> None:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    fut.set_result(5)
    assert await await_with_timeout(fut, 1.0) == 5


async def test_many_deadlines_share_one_timer_and_fire_in_order() -> None:
    from prsm.performance._ticks import RESOLUTION

    loop = asyncio.get_running_loop()
    fired: list[float] = []

    async def hang(seconds: float) -> None:
        start = loop.time()
        try:
            await await_with_timeout(asyncio.Event().wait(), seconds)
        except TimeoutError:
            fired.append(loop.time() - start)

    quick = [asyncio.create_task(hang(0.01)) for _ in range(50)]
    slow = asyncio.create_task(hang(0.03))
    done = asyncio.create_task(await_with_timeout(asyncio.sleep(0, result=7), 0.01))
    await asyncio.gather(*quick, slow)
    assert await done == 7
    assert len(fired) == 51
    assert all(t >= 0.01 for t in fired[:50])  # never early
    assert fired[-1] >= 0.03 and max(fired) < 0.03 + RESOLUTION + 0.5  # late by a tick at most
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_a_swallowed_timeout_leaves_the_task_uncancelled() -> None:
    async def stubborn() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "kept going"
        return "unreachable"

    assert await await_with_timeout(stubborn(), 0.0) == "kept going"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # no cancellation is left pending


async def test_stop_task_cancels_and_waits_and_raises_the_tasks_own_failure() -> None:
    ended = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    task = asyncio.create_task(forever())
    await asyncio.sleep(0)
    await stop_task(task)
    assert task.cancelled() and ended.is_set()
    await stop_task(None)

    async def fails() -> None:
        raise ValueError("boom")

    failed = asyncio.create_task(fails())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="boom"):
        await stop_task(failed)


async def test_a_call_stepped_by_hand_is_resumed_as_await_would() -> None:
    async def later(x: int) -> int:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return x + 1

    call = later(1)
    waits_on = call.send(None)  # it waits: what on is passed up to the task by resume
    assert await resume(call, waits_on) == 2


async def test_a_resumed_call_sees_the_tasks_cancellation_and_its_errors_propagate() -> None:
    seen: list[str] = []
    gate = asyncio.Event()

    async def hang() -> None:
        try:
            await gate.wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def run() -> None:
        call = hang()
        await resume(call, call.send(None))

    task = asyncio.create_task(run())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]

    async def fails() -> None:
        await asyncio.sleep(0)
        raise KeyError("late")

    call = fails()
    with pytest.raises(KeyError, match="late"):
        await resume(call, call.send(None))

    async def keeps_going() -> str:  # swallows the cancellation: its value comes back
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "kept going"
        return "unreachable"

    async def run2() -> str:
        call = keeps_going()
        return await resume(call, call.send(None))

    task2 = asyncio.create_task(run2())
    await asyncio.sleep(0)
    task2.cancel()
    assert await task2 == "kept going"
