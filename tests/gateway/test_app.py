"""The ASGI app in process, in front of a real orchestrator with in-process upstreams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from prsm.performance.caching._base import CacheHit
from prsm.performance.errors import UpstreamError
from prsm.performance.gateway._app import GatewayApp
from prsm.performance.gateway._settings import GatewaySettings, TenantSettings, hash_key
from prsm.performance.monitoring._registry import MetricsRegistry
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.routing._node import NodeSpec
from prsm.performance.types import AIRequest, Response

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


class FakeUpstream:
    """Answers chat with the node id; streams three events; ``fail`` nodes raise."""

    def __init__(self) -> None:
        self.fail: dict[str, UpstreamError] = {}
        self.seen: list[AIRequest] = []

    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        self.seen.append(request)
        if node.id in self.fail:
            raise self.fail[node.id]
        body = {"id": "x", "node": node.id, "usage": {"total_tokens": 7}}
        return Response(content=body, raw=orjson.dumps(body), tokens=7)

    async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        self.seen.append(request)
        if node.id in self.fail:
            raise self.fail[node.id]
        for i in range(3):
            yield b'data: {"i": %d}\n\n' % i
        yield b"data: [DONE]\n\n"


def _app(settings: GatewaySettings | None = None, nodes: int = 2) -> tuple[GatewayApp, Any]:
    upstream = FakeUpstream()
    specs = [NodeSpec(id=f"n{i}", models=["m"]) for i in range(nodes)]
    perf = PerformanceOrchestrator(nodes=specs, upstream=upstream)
    return GatewayApp(perf, settings), upstream


def _client(app: GatewayApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


async def test_chat_passes_the_upstream_bytes_and_marks_headers() -> None:
    app, upstream = _app()
    async with _client(app) as c:
        r = await c.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "abc-1"})
    assert r.status_code == 200
    assert r.json()["node"] in ("n0", "n1")
    assert r.headers["x-request-id"] == "abc-1"
    assert r.headers["x-prsm-node"] == r.json()["node"]
    assert float(r.headers["x-prsm-added-time"]) >= 0
    assert upstream.seen[0].payload == CHAT and upstream.seen[0].id == "abc-1"


async def test_cache_control_sets_the_request_cache_mode() -> None:
    app, upstream = _app()
    async with _client(app) as c:
        await c.post("/v1/chat/completions", json=CHAT, headers={"cache-control": "no-store"})
        await c.post("/v1/chat/completions", json=CHAT, headers={"cache-control": "no-cache"})
        await c.post("/v1/chat/completions", json=CHAT)
    assert [r.cache_mode for r in upstream.seen] == ["no-store", "no-cache", "default"]


async def test_the_request_handed_on_carries_what_the_client_sent() -> None:
    settings = GatewaySettings(
        request_timeout=7.5, tenants=(TenantSettings("acme", (hash_key("sk-acme"),)),)
    )
    app, upstream = _app(settings)
    headers = {"authorization": "Bearer sk-acme", "x-request-id": "rq-9",
               "cache-control": "no-cache"}  # fmt: skip
    async with _client(app) as c:
        r = await c.post("/v1/embeddings", json={"model": "m", "input": "x"}, headers=headers)
    assert r.status_code == 200
    (seen,) = upstream.seen
    assert (seen.model, seen.payload, seen.kind.value) == ("m", {"model": "m", "input": "x"},
                                                           "embedding")  # fmt: skip
    assert (seen.tenant, seen.timeout, seen.stream, seen.cache_mode, seen.id) == (
        "acme",
        7.5,
        False,
        "no-cache",
        "rq-9",
    )
    assert (seen.required_capabilities, seen.priority, seen.context_tokens) == (frozenset(), 0, 0)


async def test_stream_is_server_sent_events_in_order() -> None:
    app, _ = _app()
    async with _client(app) as c:
        r = await c.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream"
    assert r.text == 'data: {"i": 0}\n\ndata: {"i": 1}\n\ndata: {"i": 2}\n\ndata: [DONE]\n\n'


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (b'{"model": "m", "messages": "hi"}', 422, "messages"),
        (b'{"model": "other", "messages": [{"role": "user", "content": "x"}]}', 404, "model"),
    ],
)
async def test_bad_requests(body: bytes, status: int, param: str | None) -> None:
    app, _ = _app()
    async with _client(app) as c:
        r = await c.post("/v1/chat/completions", content=body)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["param"] == param
    assert "x-request-id" in r.headers and "x-prsm-added-time" in r.headers


async def test_body_over_the_limit_is_413() -> None:
    app, _ = _app(GatewaySettings(max_body_bytes=100))
    async with _client(app) as c:
        r = await c.post("/v1/chat/completions", json={**CHAT, "pad": "x" * 200})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


async def test_no_nodes_is_503_and_not_ready_but_healthy() -> None:
    app, _ = _app(nodes=0)
    async with _client(app) as c:
        r = await c.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 503
        assert "no nodes are configured" in r.json()["error"]["message"]
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/readyz")).status_code == 503


async def test_failing_nodes_are_retried_then_503() -> None:
    app, upstream = _app()
    upstream.fail["n0"] = UpstreamError("n0", "boom", status=500)
    async with _client(app) as c:
        for _ in range(4):
            r = await c.post("/v1/chat/completions", json=CHAT)
            assert r.status_code == 200 and r.json()["node"] == "n1"
        upstream.fail["n1"] = UpstreamError("n1", "boom", status=500)
        r = await c.post("/v1/chat/completions", json=CHAT)
    assert r.status_code in (502, 503)


async def test_upstream_client_error_is_passed_on_unretried() -> None:
    app, upstream = _app(nodes=1)
    body = b'{"error": {"message": "too long", "type": "invalid_request_error"}}'
    upstream.fail["n0"] = UpstreamError("n0", "400", status=400, retryable=False, body=body)
    async with _client(app) as c:
        r = await c.post("/v1/chat/completions", json=CHAT)
    # the node's status and its message, in our error shape (never the node's raw answer)
    assert r.status_code == 400 and r.json()["error"]["code"] == "upstream_rejected"
    assert r.json()["error"]["message"].endswith(": too long")
    assert len(upstream.seen) == 1


def _tenants() -> GatewaySettings:
    return GatewaySettings(
        tenants=(
            TenantSettings("admin", (hash_key("sk-admin"),), admin=True),
            TenantSettings(
                "small", (hash_key("sk-small"),), requests_per_minute=60, request_burst=2
            ),
        )
    )


async def test_auth_and_rate_limits() -> None:
    app, _ = _app(_tenants())
    async with _client(app) as c:
        assert (await c.post("/v1/chat/completions", json=CHAT)).status_code == 401
        bad = await c.post(
            "/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer no"}
        )
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"
        small = {"authorization": "Bearer sk-small"}
        assert (await c.post("/v1/chat/completions", json=CHAT, headers=small)).status_code == 200
        assert (await c.post("/v1/chat/completions", json=CHAT, headers=small)).status_code == 200
        r = await c.post("/v1/chat/completions", json=CHAT, headers=small)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert (await c.get("/admin/nodes", headers=small)).status_code == 403
        assert (await c.get("/v1/models", headers={"x-api-key": "sk-small"})).status_code == 200


async def test_admin_api_adds_drains_and_removes_nodes() -> None:
    app, _ = _app(_tenants())
    h = {"authorization": "Bearer sk-admin"}
    async with _client(app) as c:
        r = await c.post("/admin/nodes", json={"id": "n9", "models": ["m2"]}, headers=h)
        assert r.status_code == 201
        models = (await c.get("/v1/models", headers=h)).json()["data"]
        assert [m["id"] for m in models] == ["m", "m2"]
        assert (await c.post("/admin/nodes/n9/drain", headers=h)).status_code == 200
        nodes = (await c.get("/admin/nodes", headers=h)).json()["nodes"]
        assert {n["id"]: n["state"] for n in nodes}["n9"] == "draining"
        assert (await c.delete("/admin/nodes/n9", headers=h)).status_code == 200
        assert (await c.delete("/admin/nodes/n9", headers=h)).status_code == 404
        bad = await c.post("/admin/nodes", json={"id": "x", "weight": -1}, headers=h)
        assert bad.status_code == 422 and "weight" in bad.json()["error"]["message"]
        breakers = (await c.get("/admin/breakers", headers=h)).json()
        assert "breakers" in breakers


async def test_metrics_and_unknown_routes() -> None:
    app, _ = _app()
    async with _client(app) as c:
        await c.post("/v1/chat/completions", json=CHAT)
        text = (await c.get("/metrics")).text
        assert 'prsm_gateway_requests_total{route="/v1/chat/completions",status="200"} 1.0' in text
        assert (await c.get("/nope")).status_code == 404
        assert (await c.get("/v1/chat/completions")).status_code == 405


async def test_metrics_answers_for_other_processes_and_says_when_one_is_silent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, _ = _app()
    parent = MetricsRegistry()
    parent.gauge("workers_ready", "Workers ready.").set(2)
    parent.gauge("routing_nodes", "Nodes, as the parent counts them.").set(99)  # ours too

    async def pool() -> bytes:
        return parent.exposition()

    async def lost() -> bytes:
        raise ConnectionResetError("the shared model pool's connection was lost")

    app.metric_sources += [pool, lost]
    app.metrics.gauge("routing_nodes", "Nodes.").set(2)
    async with _client(app) as c:
        r = await c.get("/metrics")
        assert (await c.get("/metrics")).status_code == 200
    assert r.status_code == 200
    assert "prsm_workers_ready 2.0" in r.text.splitlines()
    assert "prsm_routing_nodes 2.0" in r.text.splitlines() and " 99.0" not in r.text
    twice = [m for m in caplog.messages if "kept as here: prsm_routing_nodes" in m]
    assert len(twice) == 1  # said once, not at every scrape
    assert "# a metrics source did not answer: ConnectionResetError" in r.text
    assert "prsm_gateway_requests_total" in r.text  # its own, still served
    assert any("did not answer" in m for m in caplog.messages)


async def test_an_unexpected_error_is_logged_and_answered_500(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = _app()

    async def broken(request: AIRequest) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(app.perf, "handle", broken)
    async with _client(app) as c:
        r = await c.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 500
    assert r.json()["error"]["type"] == "server_error"
    assert "unexpected error" in caplog.text


class DictCache:
    """A response cache double: exact match on the payload's JSON."""

    def __init__(self) -> None:
        self.entries: dict[bytes, Response] = {}

    async def lookup(self, request: AIRequest) -> CacheHit | None:
        found = self.entries.get(orjson.dumps(dict(request.payload)))
        return None if found is None else CacheHit(found, "l1")

    async def store(self, request: AIRequest, response: Response) -> None:
        self.entries[orjson.dumps(dict(request.payload))] = response


async def test_cache_headers_and_cache_control() -> None:
    upstream = FakeUpstream()
    perf = PerformanceOrchestrator(
        nodes=[NodeSpec(id="n0", models=["m"])], upstream=upstream, cache=DictCache()
    )
    async with _client(GatewayApp(perf)) as c:
        first = await c.post("/v1/chat/completions", json=CHAT)
        second = await c.post("/v1/chat/completions", json=CHAT)
        bypass = await c.post(
            "/v1/chat/completions", json=CHAT, headers={"cache-control": "no-cache"}
        )
    assert first.headers["x-prsm-cache"] == "miss"
    assert second.headers["x-prsm-cache"] == "l1" and second.content == first.content
    assert bypass.headers["x-prsm-cache"] == "miss"
    assert len(upstream.seen) == 2


async def test_a_stream_failing_after_its_first_chunk_ends_with_an_error_event() -> None:
    class Breaks(FakeUpstream):
        async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
            yield b'data: {"i": 0}\n\n'
            raise UpstreamError(node.id, "connection dropped")

    perf = PerformanceOrchestrator(nodes=[NodeSpec(id="n0", models=["m"])], upstream=Breaks())
    async with _client(GatewayApp(perf)) as c:
        r = await c.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.status_code == 200
    first, error = [e for e in r.text.split("\n\n") if e]
    assert first == 'data: {"i": 0}'
    assert "connection dropped" in orjson.loads(error.removeprefix("data: "))["error"]["message"]


async def test_a_stream_failing_before_its_first_chunk_is_retried_elsewhere() -> None:
    app, upstream = _app()
    upstream.fail["n0"] = UpstreamError("n0", "down", status=503)
    async with _client(app) as c:
        for _ in range(3):
            r = await c.post("/v1/chat/completions", json={**CHAT, "stream": True})
            assert r.status_code == 200 and r.text.endswith("data: [DONE]\n\n")


async def test_startup_and_shutdown_hooks_run_in_order() -> None:
    calls: list[str] = []

    async def add_local_node(app: GatewayApp) -> None:
        calls.append("start")
        app.perf.add_node(NodeSpec(id="local-0", models=["emb"], meta={"upstream": "local"}))

    async def stop_workers(app: GatewayApp) -> None:
        calls.append("stop")

    app, _ = _app()
    app.on_startup.append(add_local_node)
    app.on_shutdown.append(stop_workers)
    await app.startup()
    assert "emb" in app.perf.models()
    await app.shutdown()
    assert calls == ["start", "stop"] and app.shutting_down


class TextWithData(FakeUpstream):
    """Streams events whose text holds ``data:``."""

    async def stream(self, node: NodeSpec, request: AIRequest) -> AsyncIterator[bytes]:
        yield b'data: {"c": "data: x"}\n\ndata: {"c": "data:"}\n\n'
        yield b"data: [DONE]\n\n"


async def test_an_asgi_stream_charges_the_tenant_for_events_not_for_data_in_their_text() -> None:
    tenant = TenantSettings("t", (hash_key("sk-t"),), tokens_per_minute=600)
    perf = PerformanceOrchestrator(nodes=[NodeSpec(id="n0", models=["m"])], upstream=TextWithData())
    app = GatewayApp(perf, GatewaySettings(tenants=(tenant,)))
    charged: list[int] = []

    async def charge(tenant: TenantSettings, tokens: int) -> None:
        charged.append(tokens)

    app.limiter.charge = charge  # type: ignore[method-assign]
    async with _client(app) as c:
        r = await c.post("/v1/chat/completions", json={**CHAT, "stream": True},
                         headers={"authorization": "Bearer sk-t"})  # fmt: skip
    assert r.status_code == 200
    assert charged == [3]  # the three ``data:`` lines (``[DONE]`` too), not the text's
