"""``POST /v1/cache/feedback``: the application marks a served semantic hit wrong (or right),
through the gateway, in front of a real orchestrator with the semantic cache."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from prsm.performance.caching.semantic import (
    SemanticCache,
    SemanticResponseCache,
    SemanticSettings,
)
from prsm.performance.clock import ManualClock
from prsm.performance.embeddings._embedder import HashingEmbedder
from prsm.performance.gateway._app import GatewayApp
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.routing._node import NodeSpec
from prsm.performance.types import AIRequest, Response


class Upstream:
    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        body = {"choices": [{"message": {"role": "assistant", "content": "Paris"}}]}
        return Response(content=body, raw=orjson.dumps(body), tokens=3)


def chat(text: str) -> dict[str, Any]:
    return {"model": "m", "temperature": 0, "messages": [{"role": "user", "content": text}]}


async def test_feedback_marks_a_served_hit_and_teaches_the_bound(clock: ManualClock) -> None:
    settings = SemanticSettings(verifier=False, max_error_rate=0.3, explore_rate=0.0)
    semantic = SemanticResponseCache(
        SemanticCache(settings, embedder=HashingEmbedder(), clock=clock)
    )
    perf = PerformanceOrchestrator(nodes=[NodeSpec(id="n0", models=["m"])], upstream=Upstream(),
                                   cache=semantic)  # fmt: skip
    app = GatewayApp(perf)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        await c.post("/v1/chat/completions", json=chat("What is the capital of France?"))
        served = None
        for i in range(40):  # the bound explores first, learning from each stored answer
            r = await c.post("/v1/chat/completions", json=chat("what is the capital of france"),
                             headers={"x-request-id": f"q{i}"})  # fmt: skip
            if r.headers.get("x-prsm-cache") == "semantic":
                served = f"q{i}"
                break
        assert served is not None
        bad = await c.post("/v1/cache/feedback", json={"request_id": served})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_body"
        unknown = await c.post("/v1/cache/feedback", json={"request_id": "nope", "correct": False})
        assert unknown.status_code == 404
        ok = await c.post("/v1/cache/feedback", json={"request_id": served, "correct": False})
        assert ok.status_code == 200
        assert ok.json() == {"object": "cache.feedback", "request_id": served, "correct": False,
                             "learned": True}  # fmt: skip
        again = await c.post("/v1/chat/completions", json=chat("what is the capital of france"))
        assert again.headers.get("x-prsm-cache") != "semantic"  # that entry is now stricter


async def test_feedback_without_a_semantic_cache_is_not_found() -> None:
    perf = PerformanceOrchestrator(nodes=[NodeSpec(id="n0", models=["m"])], upstream=Upstream())
    transport = httpx.ASGITransport(app=GatewayApp(perf))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        r = await c.post("/v1/cache/feedback", json={"request_id": "x", "correct": False})
    assert r.status_code == 404 and "no semantic cache" in r.json()["error"]["message"]
