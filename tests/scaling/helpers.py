"""Waiting in tests: for a coroutine to reach a manual clock's sleep, or for real processes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    """Let other tasks run until ``condition()`` holds (at most ``limit`` real seconds)."""
    async with asyncio.timeout(limit):
        while True:
            if condition():
                return
            await asyncio.sleep(0.002)
