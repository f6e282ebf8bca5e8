"""Fuzz every HTTP endpoint of the gateway app (in process, through ASGI): whatever the body
and headers, the answer is a success or a 4xx with an OpenAI-style error body, never a 5xx,
and the gateway stays healthy."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from prsm.performance.config import PRSMConfig
from prsm.performance.gateway._app import GatewayApp
from prsm.performance.gateway._settings import GatewaySettings, TenantSettings, hash_key
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.routing._node import NodeSpec
from prsm.performance.types import AIRequest, Response
from tests.fuzz.strategies import HEADERS, JSON, VALID, bodies, dumps

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ROUTES = {
    "chat": "/v1/chat/completions",
    "completion": "/v1/completions",
    "embedding": "/v1/embeddings",
}
ADMIN_KEY = "sk-fuzz-admin"


class Echo:
    """An upstream that answers every request at once."""

    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        body = {"id": "x", "object": "chat.completion", "usage": {"total_tokens": 3}}
        return Response(content=body, raw=orjson.dumps(body), tokens=3)

    async def stream(self, node: NodeSpec, request: AIRequest) -> Any:
        yield b'data: {"i": 0}\n\n'
        yield b"data: [DONE]\n\n"


class Harness:
    """The app in front of an orchestrator with an exact cache, on one event loop."""

    def __init__(self, gateway: GatewaySettings) -> None:
        self.loop = asyncio.new_event_loop()
        perf = PerformanceOrchestrator.from_config(PRSMConfig(), upstream=Echo())
        for i in range(2):
            perf.add_node(NodeSpec(id=f"n{i}", models=["m"]))
        self.app = GatewayApp(perf, gateway)
        transport = httpx.ASGITransport(app=self.app, client=("127.0.0.1", 40000))
        self.client = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000")

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        response: httpx.Response = self.loop.run_until_complete(
            self.client.request(method, path, **kw)
        )
        return response

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.run_until_complete(self.app.perf.close())
        self.loop.close()


@pytest.fixture(scope="module", params=["open", "tenants"])
def gw(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "open":
        harness = Harness(GatewaySettings())
    else:
        tenants = (
            TenantSettings("a", (hash_key("sk-a"),), requests_per_minute=10**6),
            TenantSettings("ops", (hash_key(ADMIN_KEY),), admin=True),
        )
        harness = Harness(GatewaySettings(tenants=tenants))
    yield harness
    assert_healthy(harness)
    harness.close()


def assert_openai_error(r: httpx.Response) -> None:
    """A 4xx whose body is ``{"error": {"message", "type", "param", "code"}}``."""
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])
    error = r.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    assert "param" in error and "code" in error


def assert_answer(r: httpx.Response) -> None:
    assert r.headers.get("x-request-id"), r.headers
    if r.status_code >= 400:
        assert_openai_error(r)
    else:
        assert r.status_code < 300, (r.status_code, r.text[:500])


def assert_healthy(gw: Harness) -> None:
    assert gw.request("GET", "/healthz").json() == {"status": "ok"}
    headers = {"authorization": "Bearer sk-a"}
    r = gw.request("POST", ROUTES["chat"], content=dumps(VALID["chat"]), headers=headers)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("kind", sorted(ROUTES))
def test_model_routes(gw: Harness, kind: str) -> None:
    @FUZZ
    @given(body=bodies(kind), headers=HEADERS)
    def check(body: bytes, headers: dict[str, str]) -> None:
        assert_answer(gw.request("POST", ROUTES[kind], content=body, headers=headers))

    check()
    assert_healthy(gw)


def test_other_routes_and_methods(gw: Harness) -> None:
    known = st.sampled_from([
        "/healthz", "/readyz", "/metrics", "/v1/models", "/admin/nodes", "/admin/breakers",
        "/admin", "/admin/nodes/n0", "/admin/nodes/n0/drain", "/v1/chat/completions", "/",
        "/v1", "/admin/nodes/%00", "/v1/../admin/nodes",
    ])  # fmt: skip
    odd = st.text(alphabet="abcdefghijklmnopqrstuvwxyz/._-%", max_size=30).map(lambda s: "/" + s)
    paths = known | odd
    methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])

    @FUZZ
    @given(method=methods, path=paths, body=st.binary(max_size=64), headers=HEADERS)
    def check(method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        if path.startswith("/admin") and method in ("DELETE", "POST") and "n0" in path:
            headers = {k: v for k, v in headers.items() if k not in ("authorization", "x-api-key")}
        r = gw.request(method, path, content=body, headers=headers)
        if method == "HEAD":
            assert r.status_code < 500
            return
        if path == "/metrics" and r.status_code == 200:
            return  # the Prometheus text
        assert_answer(r)

    check()
    assert_healthy(gw)


def test_admin_node_bodies(gw: Harness) -> None:
    keys = st.sampled_from(["id", "models", "capabilities", "max_context", "max_concurrency",
                            "queue_size", "cost_per_1k_tokens", "weight", "url", "api_key_env",
                            "timeout", "meta", "zzz"])  # fmt: skip
    node = st.dictionaries(keys, JSON, max_size=6)
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}

    @FUZZ
    @given(body=node.map(dumps) | st.binary(max_size=80) | JSON.map(dumps))
    def check(body: bytes) -> None:
        r = gw.request("POST", "/admin/nodes", content=body, headers=admin)
        assert_answer(r)
        if r.status_code < 300:  # added: remove it again, so the registry stays small
            added = r.json()
            ident = added.get("added") or added.get("updated")
            if ident not in ("n0", "n1"):
                gw.request("DELETE", f"/admin/nodes/{ident}", headers=admin)

    check()
    assert_healthy(gw)
