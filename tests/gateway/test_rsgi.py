"""The app on granian's RSGI interface (what ``prsm-perf serve`` runs), with an in-test
RSGI protocol double; the real granian path is covered by test_integration."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from prsm.performance.gateway.app import GatewayApp
from prsm.performance.gateway.settings import GatewaySettings
from prsm.performance.orchestrator import PerformanceOrchestrator
from prsm.performance.routing.node import NodeSpec
from tests.gateway.test_app import CHAT, FakeUpstream


class Scope:
    def __init__(self, method: str, path: str, headers: dict[str, str]) -> None:
        self.method = method
        self.path = path
        self.headers = headers  # granian's headers: looked up by lower-case name


class Transport:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    async def send_bytes(self, data: bytes) -> None:
        self.chunks.append(data)


class Proto:
    """Records what the app answers; the body comes whole or in ``parts``."""

    def __init__(self, body: bytes = b"", parts: list[bytes] | None = None) -> None:
        self.body = body
        self.parts = parts
        self.status = 0
        self.headers: dict[str, str] = {}
        self.answer = b""
        self.transport: Transport | None = None

    async def __call__(self) -> bytes:
        return self.body

    async def _parts(self) -> AsyncIterator[bytes]:
        for part in self.parts or [self.body]:
            yield part

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._parts()

    async def client_disconnect(self) -> None:
        await asyncio.Event().wait()  # the client stays

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status, self.headers, self.answer = status, dict(headers), body

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> Transport:
        self.status, self.headers = status, dict(headers)
        self.transport = Transport()
        return self.transport


def _app(settings: GatewaySettings | None = None) -> GatewayApp:
    perf = PerformanceOrchestrator(
        nodes=[NodeSpec(id="n0", models=frozenset({"m"}))], upstream=FakeUpstream()
    )
    return GatewayApp(perf, settings)


async def _call(app: GatewayApp, method: str, path: str, proto: Proto, **headers: str) -> Proto:
    await app.__rsgi__(Scope(method, path, headers), proto)
    return proto


async def test_chat_over_rsgi_answers_the_upstream_bytes_with_the_headers() -> None:
    body = orjson.dumps(CHAT)
    p = await _call(
        _app(),
        "POST",
        "/v1/chat/completions",
        Proto(body),
        **{"content-length": str(len(body)), "x-request-id": "abc-1"},
    )
    assert p.status == 200
    assert orjson.loads(p.answer)["node"] == "n0"
    assert p.headers["x-request-id"] == "abc-1" and p.headers["x-prsm-node"] == "n0"
    assert p.headers["content-type"] == "application/json"
    assert p.headers["content-length"] == str(len(p.answer))
    assert float(p.headers["x-prsm-added-time"]) >= 0


async def test_stream_over_rsgi_passes_the_events_in_order() -> None:
    body = orjson.dumps({**CHAT, "stream": True})
    p = await _call(_app(), "POST", "/v1/chat/completions", Proto(body))
    assert p.status == 200 and p.headers["content-type"] == "text/event-stream"
    assert p.transport is not None
    assert b"".join(p.transport.chunks).count(b"data:") == 4


async def test_errors_and_limits_over_rsgi() -> None:
    app = _app(GatewaySettings(max_body_bytes=64))
    p = await _call(app, "POST", "/v1/chat/completions", Proto(b"nope"))
    assert p.status == 400 and orjson.loads(p.answer)["error"]["code"] == "invalid_json"
    big = b"x" * 100
    p = await _call(
        app, "POST", "/v1/chat/completions", Proto(big), **{"content-length": str(len(big))}
    )
    assert p.status == 413
    p = await _call(app, "POST", "/v1/chat/completions", Proto(parts=[big[:50], big[50:]]))
    assert p.status == 413  # no Content-Length: counted as it comes
    p = await _call(app, "GET", "/healthz", Proto())
    assert p.status == 200 and p.answer == b'{"status":"ok"}'
    p = await _call(app, "GET", "/nowhere", Proto())
    assert p.status == 404


def test_rsgi_init_and_del_start_and_stop_the_app() -> None:
    app = _app()
    seen: list[str] = []

    async def up(_: Any) -> None:
        seen.append("up")

    async def down(_: Any) -> None:
        seen.append("down")

    app.on_startup.append(up)
    app.on_shutdown.append(down)
    loop = asyncio.new_event_loop()
    try:
        app.__rsgi_init__(loop)
        assert seen == ["up"] and not app.shutting_down
        app.__rsgi_del__(loop)
        assert seen == ["up", "down"] and app.shutting_down
    finally:
        loop.close()
