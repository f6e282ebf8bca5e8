"""No tenant reads another's cached answers, in any tier (memory, Redis, disk, CAS) or the
semantic index, under concurrent load from two tenants sending identical prompts.

The upstream writes the asking tenant into every answer, so an answer served to the wrong
tenant is seen at once. The load runs three times over the same stores: with every tier
warm (L1 hits), with a fresh L1 (answers come from L2), and with L2 gone too (from L3, the
content-addressed store); paraphrases go to the semantic index.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from prsm.performance.caching._base import ChainedResponseCache
from prsm.performance.caching._multi_tier import MultiTierCache
from prsm.performance.caching._response_cache import ExactResponseCache
from prsm.performance.caching._settings import CacheSettings
from prsm.performance.caching.semantic._factory import build_semantic_cache
from prsm.performance.caching.semantic._settings import SemanticSettings
from prsm.performance.embeddings._embedder import HashingEmbedder
from prsm.performance.gateway._app import GatewayApp
from prsm.performance.gateway._settings import GatewaySettings, TenantSettings, hash_key
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.routing._node import NodeSpec
from prsm.performance.types import AIRequest, Response
from tests.conftest import RedisServer

pytestmark = pytest.mark.integration

KEYS = {"alpha": "sk-alpha-key", "beta": "sk-beta-key"}
PROMPTS = [f"What is the capital of country number {i}?" for i in range(12)]
PARAPHRASES = [f"Tell me the capital of country number {i}?" for i in range(12)]


class TenantEcho:
    """Answers with the tenant that asked (and how many answers it has made)."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.count = itertools.count()

    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        self.calls[request.tenant] += 1
        await asyncio.sleep(0)  # let the other tenant's identical request interleave
        text = f"tenant={request.tenant} n={next(self.count)}"
        body = {"id": "c", "object": "chat.completion", "model": request.model,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"total_tokens": 6}}  # fmt: skip
        return Response(content=body, raw=orjson.dumps(body), tokens=6)


def _app(
    cache_settings: CacheSettings, semantic: SemanticSettings, upstream: TenantEcho
) -> GatewayApp:
    exact = ExactResponseCache(MultiTierCache(cache_settings))
    sem = build_semantic_cache(semantic, embedder=HashingEmbedder())
    perf = PerformanceOrchestrator(
        nodes=[NodeSpec(id="n", models=["m"])],
        upstream=upstream,
        cache=ChainedResponseCache([exact, sem]),
    )
    tenants = tuple(TenantSettings(t, (hash_key(k),)) for t, k in KEYS.items())
    return GatewayApp(perf, GatewaySettings(tenants=tenants))


async def _load(app: GatewayApp, prompts: list[str], rounds: int) -> collections.Counter[str]:
    """Both tenants send every prompt, ``rounds`` times, all at once; every answer must name
    the tenant that asked. Returns the cache tiers that answered."""
    tiers: collections.Counter[str] = collections.Counter()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:

        async def ask(tenant: str, prompt: str) -> None:
            body = {"model": "m", "temperature": 0,
                    "messages": [{"role": "user", "content": prompt}]}  # fmt: skip
            r = await client.post("/v1/chat/completions", json=body,
                                  headers={"authorization": f"Bearer {KEYS[tenant]}"})  # fmt: skip
            assert r.status_code == 200, r.text
            answer = r.json()["choices"][0]["message"]["content"]
            assert answer.startswith(f"tenant={tenant} "), (tenant, prompt, answer, r.headers)
            tiers[r.headers.get("x-prsm-cache", "none")] += 1

        for _ in range(rounds):
            await asyncio.gather(*(ask(t, p) for p in prompts for t in KEYS))
    return tiers


async def _run(cache_settings: CacheSettings, semantic: SemanticSettings) -> None:
    upstream = TenantEcho()
    warm = _app(cache_settings, semantic, upstream)
    tiers = await _load(warm, PROMPTS, rounds=3)
    assert tiers["l1"] > 0, tiers  # served from memory
    assert upstream.calls["alpha"] > 0 and upstream.calls["beta"] > 0  # each made its own
    # paraphrases: the semantic index answers within a tenant, never across
    tiers = await _load(warm, PARAPHRASES, rounds=2)
    assert tiers["semantic"] > 0, tiers
    await warm.perf.close()

    fresh = _app(cache_settings, semantic, upstream)  # a new L1 over the same stores
    tiers = await _load(fresh, PROMPTS, rounds=1)
    assert tiers["l2"] > 0, tiers
    await fresh.perf.close()

    no_l2 = CacheSettings(**{**_fields(cache_settings), "l2": "none", "redis_url": None})
    l3_only = _app(no_l2, semantic, upstream)
    tiers = await _load(l3_only, PROMPTS, rounds=1)
    assert tiers["l3"] > 0, tiers
    await l3_only.perf.close()


def _fields(settings: CacheSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


async def test_tenants_never_share_entries_redis_l2(tmp_path: Path, own_redis: RedisServer) -> None:
    cache = CacheSettings(l2="redis", redis_url=own_redis.url, l3="cas", data_dir=str(tmp_path))
    semantic = SemanticSettings(verifier=False, threshold=0.5, redis_url=own_redis.url)
    await _run(cache, semantic)


async def test_tenants_never_share_entries_disk_l2(tmp_path: Path) -> None:
    cache = CacheSettings(l2="disk", l3="cas", data_dir=str(tmp_path))
    semantic = SemanticSettings(verifier=False, threshold=0.5, data_dir=str(tmp_path))
    await _run(cache, semantic)
