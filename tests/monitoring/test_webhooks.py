"""Alert notifications to a real local HTTP receiver: Alertmanager's JSON, the HMAC
signature, retries, timeouts, and the log."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from prsm.performance.clock import ManualClock
from prsm.performance.errors import ConfigError
from prsm.performance.monitoring import (
    AlertManager,
    AlertRule,
    AlertSettings,
    AlertStatus,
    LogNotifier,
    MemoryMetricsStore,
    Notification,
    Sample,
    WebhookNotifier,
    WebhookSettings,
)
from tests.conftest import free_port

pytestmark = pytest.mark.integration


class Receiver:
    """An HTTP server on a free loopback port that records what it is sent and answers with
    the statuses it is told to (then 200)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.stall = 0  # requests to hold past the client's timeout
        self.runner: web.AppRunner | None = None
        self.release = asyncio.Event()  # set on stop: stalled handlers end

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append((dict(request.headers), body))
        if self.stall:
            self.stall -= 1
            await self.release.wait()  # no answer before the client times out
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        self.release.set()
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


def alert(severity: str = "page") -> AlertStatus:
    return AlertStatus(
        "HighErrors", "threshold", "firing", severity,
        {"alertname": "HighErrors", "severity": severity}, 0.3, 1_700_000_000.0, "errors > 0.1",
    )  # fmt: skip


async def test_a_signed_alertmanager_payload_is_posted(receiver: Receiver) -> None:
    clock = ManualClock()
    hook = WebhookNotifier(
        WebhookSettings(receiver.url, secret_env="HOOK_SECRET"),
        clock=clock,
        environ={"HOOK_SECRET": "s3cret"},
    )
    await hook.send(Notification("firing", alert(), clock.time()))
    await hook.aclose()
    ((headers, body),) = receiver.received
    ts = headers["x-prsm-timestamp"]
    want = hmac.new(b"s3cret", ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["x-prsm-signature"] == f"sha256={want}"
    data = orjson.loads(body)
    assert data["version"] == "4"
    assert data["status"] == "firing"
    (a,) = data["alerts"]
    assert a["labels"] == {"alertname": "HighErrors", "severity": "page"}
    assert a["startsAt"] == "2023-11-14T22:13:20Z"
    assert a["endsAt"] == "0001-01-01T00:00:00Z"
    assert a["fingerprint"] == alert().fingerprint


async def test_failures_are_retried_with_backoff(receiver: Receiver) -> None:
    clock = ManualClock()
    receiver.statuses = [500, 429]
    hook = WebhookNotifier(WebhookSettings(receiver.url, retries=3, backoff=0.5), clock=clock)
    send = _run_with_clock(hook.send(Notification("firing", alert(), 0.0)), clock)
    await send
    await hook.aclose()
    assert len(receiver.received) == 3
    assert hook.sent == 1 and hook.failed == 0


async def test_a_timeout_is_retried_then_given_up_and_logged(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    receiver.stall = 5
    # 1 s, not less: each try must reach the receiver before it times out, also on a busy
    # two-core CI machine (0.2 s once let the retry time out before it was read).
    hook = WebhookNotifier(
        WebhookSettings(receiver.url, retries=1, backoff=0.01, timeout=1.0), clock=clock
    )
    with caplog.at_level(logging.ERROR, "prsm.performance.alerts"):
        await _run_with_clock(hook.send(Notification("firing", alert(), 0.0)), clock)
    await hook.aclose()
    assert len(receiver.received) == 2
    assert hook.failed == 1
    assert "not delivered" in caplog.text and "Timeout" in caplog.text


async def test_a_client_error_is_not_retried(receiver: Receiver) -> None:
    receiver.statuses = [400]
    hook = WebhookNotifier(WebhookSettings(receiver.url, retries=3), clock=ManualClock())
    await hook.send(Notification("resolved", alert(), 5.0))
    await hook.aclose()
    assert len(receiver.received) == 1
    assert orjson.loads(receiver.received[0][1])["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"


async def test_the_manager_sends_each_change_once_to_log_and_webhook(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    settings = AlertSettings(
        rules=(AlertRule("Hot", "x", ">", 1, severity="warning"),),
        webhooks=(WebhookSettings(receiver.url, min_severity="warning"),),
    )
    manager = AlertManager(settings, clock=clock)
    store = MemoryMetricsStore()
    with caplog.at_level(logging.INFO, "prsm.performance.alerts"):
        for value in (5.0, 5.0, 0.0):
            now = clock.time()
            store.write([Sample("x", (), now, value)])
            manager.dispatch(manager.evaluate(store, now))
            await manager.drain()
            clock.advance(1.0)
    await manager.aclose()
    statuses = [orjson.loads(b)["status"] for _, b in receiver.received]
    assert statuses == ["firing", "resolved"]
    assert caplog.text.count("alert Hot firing") == 1
    assert caplog.text.count("alert Hot resolved") == 1


async def test_below_min_severity_is_not_sent(receiver: Receiver) -> None:
    hook = WebhookNotifier(WebhookSettings(receiver.url, min_severity="page"))
    manager = AlertManager(AlertSettings(log=False), notifiers=[LogNotifier(), hook])
    manager.dispatch([Notification("firing", alert("info"), 0.0)])
    await manager.aclose()
    assert receiver.received == []


def test_a_missing_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="NOPE"):
        WebhookNotifier(WebhookSettings("http://127.0.0.1:9/x", secret_env="NOPE"), environ={})


async def _run_with_clock(coro: Any, clock: ManualClock) -> None:
    """Run ``coro``, moving the manual clock whenever it sleeps (its back-off)."""
    task = asyncio.ensure_future(coro)
    while not task.done():
        await asyncio.sleep(0)
        if clock.sleepers:
            clock.advance(10.0)
        else:
            await asyncio.wait({task}, timeout=0.05)
    await task
