"""Waiting in tests: for a coroutine to reach a manual clock's sleep, or for real processes;
and gateway config files that must be refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
import yaml

from prsm.performance.config import load_config
from prsm.performance.errors import ConfigError
from prsm.performance.scaling._pods import ScalingReportSettings
from prsm.performance.serve._pod_links import forward_pod_reports


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


def forwarding(parent: object) -> Callable[[bytes], Any]:
    """What a gateway process of ``serve --workers N`` on a scaler pod does with a report
    (:func:`forward_pod_reports`' ``accept``): checked, then handed to ``parent`` (its serving
    parent's link: ``send_now(message)``)."""
    kube = SimpleNamespace(enabled=True, node="vllm")
    config = SimpleNamespace(orchestrator=SimpleNamespace(auto_scaling=True), kubernetes=kube,
                             scaling_report=ScalingReportSettings())  # fmt: skip
    app = SimpleNamespace(admin=SimpleNamespace(scaling_load=None))
    forward_pod_reports(cast(Any, app), cast(Any, config), cast(Any, parent))
    accept = app.admin.scaling_load
    assert accept is not None
    return cast("Callable[[bytes], Any]", accept)
