"""The helper process: a fresh interpreter that runs one request at a time, reused, started
again when it dies, stopped past a call's limit (real processes, bounded, stopped)."""

from __future__ import annotations

import asyncio
import operator
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prsm.performance._heap import libc_malloc_trim, resident_bytes
from prsm.performance._helper_process import HelperProcess
from prsm.performance.errors import HelperProcessError

MB = 2**20

pytestmark = pytest.mark.integration


@pytest.fixture
def helper() -> Iterator[HelperProcess]:
    h = HelperProcess("test helper")
    yield h
    h.close()


def test_calls_run_in_one_reused_process(helper: HelperProcess) -> None:
    assert helper.call(operator.add, (2, 3), 30.0) == 5
    pid = helper.call(os.getpid, (), 30.0)
    assert pid == helper.pid != os.getpid()
    assert helper.call(os.getpid, (), 30.0) == pid  # reused
    assert helper.starts == 1


def test_an_error_comes_back_with_its_traceback_and_the_helper_lives_on(
    helper: HelperProcess,
) -> None:
    with pytest.raises(HelperProcessError, match="ZeroDivisionError") as info:
        helper.call(operator.truediv, (1, 0), 30.0)
    assert info.value.name == "test helper"
    assert "Traceback" in str(info.value)
    assert helper.alive
    assert helper.call(operator.mul, (6, 7), 30.0) == 42
    assert helper.starts == 1


def test_a_helper_that_dies_mid_call_is_an_error_then_starts_again(helper: HelperProcess) -> None:
    first = helper.call(os.getpid, (), 30.0)
    with pytest.raises(HelperProcessError, match=r"exited unexpectedly \(code 3\)"):
        helper.call(os._exit, (3,), 30.0)
    assert not helper.alive
    second = helper.call(os.getpid, (), 30.0)
    assert second != first
    assert helper.starts == 2


def test_a_call_past_its_limit_stops_the_helper(helper: HelperProcess) -> None:
    pid = helper.call(os.getpid, (), 30.0)
    with pytest.raises(TimeoutError, match=r"sleep ran past 0\.2s"):
        helper.call(time.sleep, (30,), 0.2)
    assert not helper.alive
    assert helper.call(os.getpid, (), 30.0) != pid  # a fresh one


def test_prepare_runs_once_per_start_of_the_helper(helper: HelperProcess) -> None:
    helper.prepare(os.getpid, (), 30.0)
    pid = helper.pid
    helper.prepare(os.getpid, (), 30.0)  # prepared already: no request
    assert helper.pid == pid
    with pytest.raises(HelperProcessError):
        helper.call(os._exit, (1,), 30.0)
    helper.prepare(os.getpid, (), 30.0)  # a new start: prepared again
    assert helper.alive and helper.pid != pid


def test_a_call_prepares_first_once_per_start(helper: HelperProcess, tmp_path: Path) -> None:
    made = str(tmp_path / "made")  # os.mkdir fails if it runs twice on the same path
    prepare = (os.mkdir, (made,))
    pid = helper.call(os.getpid, (), 30.0, prepare=prepare)
    assert os.path.isdir(made)
    assert helper.call(os.getpid, (), 30.0, prepare=prepare) == pid  # prepared: mkdir not run
    helper.close()
    with pytest.raises(HelperProcessError, match="FileExistsError"):  # a new start runs it again
        helper.call(os.getpid, (), 30.0, prepare=prepare)


async def test_an_async_call_answers_as_a_blocking_one(
    helper: HelperProcess, tmp_path: Path
) -> None:
    made = str(tmp_path / "made")
    pid = await helper.acall(os.getpid, (), 30.0, prepare=(os.mkdir, (made,)))
    assert pid == helper.call(os.getpid, (), 30.0) != os.getpid()
    assert await helper.acall(os.getpid, (), 30.0, prepare=(os.mkdir, (made,))) == pid
    big = "x" * 3_000_000  # many times a pipe's buffer: written as the helper reads it
    assert await helper.acall(len, (big,), 30.0) == len(big)
    with pytest.raises(HelperProcessError, match="ZeroDivisionError"):
        await helper.acall(operator.truediv, (1, 0), 30.0)
    with pytest.raises(TimeoutError, match=r"sleep ran past 0\.2s"):
        await helper.acall(time.sleep, (30,), 0.2)
    assert not helper.alive
    assert await helper.acall(operator.mul, (6, 7), 30.0) == 42  # a fresh one


async def test_a_cancelled_async_caller_leaves_the_answer_to_its_call(
    helper: HelperProcess,
) -> None:
    first = asyncio.ensure_future(helper.acall(time.sleep, (0.3,), 30.0))
    await asyncio.sleep(0.05)  # its request is with the helper
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    # the next call queues behind it and reads its own answer, not the sleep's None
    assert await helper.acall(operator.add, (2, 3), 30.0) == 5
    assert helper.starts == 1


async def test_concurrent_async_calls_take_turns(helper: HelperProcess) -> None:
    got = await asyncio.gather(*(helper.acall(operator.mul, (i, i), 30.0) for i in range(8)))
    assert got == [i * i for i in range(8)] and helper.starts == 1


#: a block allocated after the freed ones, kept alive in the helper: it pins the heap's top
_PINNED: list[bytes] = []


def leave_freed_heap(mb: int, block: int = 4000) -> int:
    """In the helper: allocate ``mb`` MB in blocks of ``block`` bytes (malloc's heap, under
    its mmap threshold), pin the heap's top with one more, free the rest; the resident size
    then."""
    blocks = [b"x" * block for _ in range(mb * 2**20 // block)]
    _PINNED.append(b"y" * block)
    del blocks
    size = resident_bytes()
    assert size is not None
    return size


@pytest.mark.skipif(libc_malloc_trim() is None or resident_bytes() is None, reason="glibc only")
def test_the_helper_gives_freed_heap_back_after_a_call(helper: HelperProcess) -> None:
    """What a call freed but glibc kept (as a cross-encoder's varied forward passes leave) is
    trimmed after the answer, as in an embedding worker (``_heap.py``)."""
    start = helper.call(resident_bytes, (), 30.0)
    held = helper.call(leave_freed_heap, (96,), 30.0)
    assert held - start > 64 * MB  # kept by malloc after the free
    after = helper.call(resident_bytes, (), 30.0)
    assert after - start < 32 * MB, f"{(after - start) / MB:.0f} MB still resident"
