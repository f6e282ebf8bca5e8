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


@pytest.mark.parametrize("auto_scaling", [True, False])
def test_a_process_sharing_the_pool_warns_only_that_auto_scaling_does_not_scale_it(
    auto_scaling: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(POOL_SOCKET_ENV, "/tmp/prsm-test-pool.sock")
    app = _app()
    scaling = PredictiveSettings() if auto_scaling else None
    with caplog.at_level(logging.WARNING, logger="prsm.performance.serve._local_workers"):
        attach_local_workers(app, WorkerSettings(count=2), scaling)
    assert len(app.on_startup) == 1  # it joins the shared pool, nothing more
    if auto_scaling:
        assert "not scaled" in caplog.text and "workers.count = 2" in caplog.text
    else:
        assert caplog.text == ""
