from __future__ import annotations

import asyncio

import pytest

from prsm.performance.clock import Clock, ManualClock, SystemClock


def test_system_clock_is_a_clock() -> None:
    c = SystemClock()
    assert isinstance(c, Clock)
    a = c.monotonic()
    assert c.monotonic() >= a
    assert c.time() > 1_600_000_000


async def test_manual_clock_wakes_sleepers_in_order() -> None:
    clock = ManualClock()
    woke: list[str] = []

    async def sleeper(name: str, s: float) -> None:
        await clock.sleep(s)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper("b", 2.0)), asyncio.create_task(sleeper("a", 1.0))]
    await asyncio.sleep(0)
    assert clock.sleepers == 2
    clock.advance(1.0)
    await asyncio.sleep(0)
    assert woke == ["a"]
    clock.advance(1.5)
    await asyncio.gather(*tasks)
    assert woke == ["a", "b"]
    assert clock.monotonic() == 2.5
    assert clock.time() == clock.monotonic() + 1_700_000_000.0


async def test_manual_clock_zero_sleep_yields() -> None:
    clock = ManualClock(start=5.0)
    await clock.sleep(0)
    assert clock.monotonic() == 5.0


def test_manual_clock_refuses_to_go_back() -> None:
    clock = ManualClock(start=3.0)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(2.0)
