"""Waiting in tests: for a coroutine to reach a manual clock's sleep, or for real processes;
and gateway config files that must be refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from prsm.performance.config import load_config
from prsm.performance.errors import ConfigError


async def until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    """Let other tasks run until ``condition()`` holds (at most ``limit`` real seconds)."""
    async with asyncio.timeout(limit):
        while True:
            if condition():
                return
            await asyncio.sleep(0.002)


def write_config(tmp_path: Path, config: dict[str, Any]) -> Path:
    """``config`` as the gateway's YAML file in ``tmp_path``."""
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def refused_field(tmp_path: Path, config: dict[str, Any]) -> str:
    """The field named by the :class:`ConfigError` loading ``config`` raises."""
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, config))
    return info.value.field


def six_at_once(url: str, timeout: float = 30.0) -> set[int]:
    """Twelve chat requests to the gateway at ``url`` for model ``m``, six at once, every
    other one streamed (calls and streams both count as load); their statuses."""
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}

    def one(i: int) -> int:
        body = {**chat, "stream": i % 2 == 1}
        return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=timeout).status_code

    with ThreadPoolExecutor(6) as pool:
        return set(pool.map(one, range(12)))
