"""An auto-advancing manual clock: a driver's ``sleep`` moves time at once and is recorded."""

from __future__ import annotations

import asyncio

import pytest

from prsm.performance.clock import ManualClock


class SleepRecordingClock(ManualClock):
    """A :class:`ManualClock` whose ``sleep`` advances time by what was asked, at once (no
    real wait), and keeps the list of what was asked in ``slept``."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


@pytest.fixture
def auto_clock() -> SleepRecordingClock:
    return SleepRecordingClock()
