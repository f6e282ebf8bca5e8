"""``serve --workers N`` shares one worker pool between the gateway processes; auto-scaling
does not scale it, and each process says so instead of silently keeping the count."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from prsm.performance.scaling import PredictiveSettings
from prsm.performance.serve._local_workers import attach_local_workers
from prsm.performance.serve._shared_pool import POOL_SOCKET_ENV
from prsm.performance.workers._settings import WorkerSettings


def _app() -> Any:
    return SimpleNamespace(on_startup=[], on_shutdown=[])


def test_a_process_sharing_the_pool_warns_that_auto_scaling_does_not_scale_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(POOL_SOCKET_ENV, "/tmp/prsm-test-pool.sock")
    app = _app()
    with caplog.at_level(logging.WARNING, logger="prsm.performance.serve._local_workers"):
        attach_local_workers(app, WorkerSettings(count=2), PredictiveSettings())
    assert len(app.on_startup) == 1  # it joins the shared pool, nothing more
    assert "not scaled" in caplog.text and "workers.count = 2" in caplog.text


def test_without_auto_scaling_a_process_joins_the_shared_pool_quietly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(POOL_SOCKET_ENV, "/tmp/prsm-test-pool.sock")
    app = _app()
    with caplog.at_level(logging.WARNING, logger="prsm.performance.serve._local_workers"):
        attach_local_workers(app, WorkerSettings(count=2), None)
    assert len(app.on_startup) == 1 and caplog.text == ""
