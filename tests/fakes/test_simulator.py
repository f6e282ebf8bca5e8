"""The upstream simulator: its pure decisions, its control settings, and (integration) the
server answering real HTTP on a loopback port."""

from __future__ import annotations

import asyncio
import random
import statistics

import httpx
import pytest

from prsm.performance.errors import ConfigError
from prsm.performance.fakes import SimSettings, UpstreamSimulator
from prsm.performance.fakes._policy import decide, draw_latency, embedding_vector
from prsm.performance.fakes._settings import apply_control


def test_fixed_latency_and_no_errors_by_default() -> None:
    s = SimSettings(latency=0.05)
    d = decide(s, random.Random(1), stream=False)
    assert d.error is None and d.delay == 0.05
    assert decide(SimSettings(ttft=0.2), random.Random(1), stream=True).delay == 0.2


def test_lognormal_has_the_requested_mean_and_is_seeded() -> None:
    s = SimSettings(distribution="lognormal", latency=0.1, latency_std=0.05)
    draws = [draw_latency(s, random.Random(7)) for _ in range(3)]
    assert len(set(draws)) == 1  # same seed, same draw
    rng = random.Random(3)
    sample = [draw_latency(s, rng) for _ in range(20000)]
    assert statistics.fmean(sample) == pytest.approx(0.1, rel=0.05)
    assert statistics.stdev(sample) == pytest.approx(0.05, rel=0.1)


def test_normal_latency_is_never_negative() -> None:
    s = SimSettings(distribution="normal", latency=0.001, latency_std=0.01)
    rng = random.Random(0)
    assert min(draw_latency(s, rng) for _ in range(1000)) == 0.0


def test_error_rate_and_kinds() -> None:
    s = SimSettings(error_rate=0.5, error_kinds=("500", "drop"))
    rng = random.Random(0)
    kinds = [decide(s, rng, stream=False).error for _ in range(2000)]
    assert 0.45 < sum(k is not None for k in kinds) / 2000 < 0.55
    assert {k for k in kinds if k} == {"500", "drop"}


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ConfigError) as err:
        SimSettings(error_kinds=("503",))
    assert err.value.field == "error_kinds"
    with pytest.raises(ConfigError) as err:
        SimSettings(distribution="pareto")
    assert err.value.field == "distribution"
    with pytest.raises(ConfigError) as err:
        apply_control(SimSettings(), {"port": 1})
    assert err.value.field == "port"
    with pytest.raises(ConfigError) as err:
        apply_control(SimSettings(), {"latency": "slow"})
    assert err.value.field == "latency"
    assert apply_control(SimSettings(), {"error_rate": 1, "error_kinds": ["429"]}).error_rate == 1.0


def test_embeddings_are_deterministic_unit_vectors() -> None:
    a = embedding_vector("hello", 16, 0)
    assert a == embedding_vector("hello", 16, 0)
    assert a != embedding_vector("hello!", 16, 0)
    assert sum(v * v for v in a) == pytest.approx(1.0)


@pytest.mark.integration
async def test_server_answers_streams_fails_and_is_controlled() -> None:
    sim = UpstreamSimulator(SimSettings(port=0, name="s1"))
    port = await sim.start()
    base = f"http://127.0.0.1:{port}"
    chat = {"model": "sim-chat", "messages": [{"role": "user", "content": "a b c"}]}
    try:
        async with httpx.AsyncClient(base_url=base) as c:
            r = await c.post("/v1/chat/completions", json={**chat, "max_tokens": 3})
            body = r.json()
            assert body["system_fingerprint"] == "s1"
            assert body["choices"][0]["message"]["content"] == "tok0 tok1 tok2"
            assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
            r = await c.post("/v1/completions", json={"model": "sim-chat", "prompt": "x"})
            assert r.json()["object"] == "text_completion"
            r = await c.post("/v1/embeddings", json={"model": "sim-embed", "input": ["a", "b"]})
            assert len(r.json()["data"]) == 2 and len(r.json()["data"][0]["embedding"]) == 384
            models = (await c.get("/v1/models")).json()["data"]
            assert [m["id"] for m in models] == ["sim-chat", "sim-embed"]
            async with c.stream(
                "POST", "/v1/chat/completions", json={**chat, "stream": True, "max_tokens": 4}
            ) as s:
                events = [line async for line in s.aiter_lines() if line.startswith("data:")]
            assert len(events) == 5 and events[-1] == "data: [DONE]"
            assert (await c.post("/v1/chat/completions", json={"model": "x"})).status_code == 404
            r = await c.post("/_control", json={"error_rate": 1.0, "error_kinds": ["429"]})
            assert r.json()["settings"]["error_rate"] == 1.0
            r = await c.post("/v1/chat/completions", json=chat)
            assert r.status_code == 429 and r.headers["retry-after"] == "1"
            await c.post("/_control", json={"error_kinds": ["drop"]})
            with pytest.raises(httpx.RemoteProtocolError):
                await c.post("/v1/chat/completions", json=chat)
            await c.post("/_control", json={"error_kinds": ["timeout"]})
            with pytest.raises(httpx.ReadTimeout):
                await c.post("/v1/chat/completions", json=chat, timeout=0.2)
            bad = await c.post("/_control", json={"error_rate": 2})
            assert bad.status_code == 422 and bad.json()["error"]["param"] == "error_rate"
            stats = (await c.get("/_control")).json()["stats"]
            assert stats["errors"] == {"429": 1, "drop": 1, "timeout": 1, "404": 1}
    finally:
        await sim.close()
        await asyncio.sleep(0)


@pytest.mark.integration
async def test_api_key_is_required_when_set() -> None:
    sim = UpstreamSimulator(SimSettings(port=0, api_key="sk-up"))
    port = await sim.start()
    chat = {"model": "sim-chat", "messages": [{"role": "user", "content": "x"}]}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            assert (await c.post("/v1/chat/completions", json=chat)).status_code == 401
            ok = await c.post(
                "/v1/chat/completions", json=chat, headers={"authorization": "Bearer sk-up"}
            )
            assert ok.status_code == 200
    finally:
        await sim.close()


@pytest.mark.integration
async def test_paced_streams_delays_and_http_limits_on_the_server_core() -> None:
    from prsm.performance.http._settings import HttpServerSettings

    limits = HttpServerSettings(max_url_bytes=256)
    sim = UpstreamSimulator(SimSettings(port=0, ttft=0.01, tokens_per_second=500, http=limits))
    port = await sim.start()
    chat = {"model": "sim-chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 3}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            async with c.stream("POST", "/v1/chat/completions", json={**chat, "stream": True}) as s:
                pieces = [p async for p in s.aiter_raw()]
            assert b"".join(pieces).count(b"data: ") == 4 and len(pieces) >= 2  # paced
            await c.post("/_control", json={"latency": 0.01})
            r = await c.post("/v1/chat/completions", json=chat)
            assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3
            assert (await c.get("/" + "a" * 300)).status_code == 414  # the core's limits
            assert sim.stats.open_connections >= 1
    finally:
        await sim.close()


def _words(body: dict[str, object]) -> str:
    from prsm.performance.fakes._policy import stream_words

    return "".join(stream_words(SimSettings(), body))


def test_a_continuation_of_its_own_answer_yields_exactly_the_rest() -> None:
    ask = [{"role": "user", "content": "hi"}]
    whole = _words({"messages": ask})  # the natural answer: 16 tokens
    assert whole == "tok0" + "".join(f" tok{i}" for i in range(1, 16))
    for cut in (1, 4, 7, 13, 30, len(whole) - 1):  # inside a token or between two
        prefix = whole[:cut]
        body = {
            "messages": [*ask, {"role": "assistant", "content": prefix}],
            "continue_final_message": True,
            "add_generation_prompt": False,
        }
        assert prefix + _words(body) == whole
    body = {
        "messages": [*ask, {"role": "assistant", "content": "tok0 tok1 tok"}],
        "continue_final_message": True,
        "add_generation_prompt": False,
        "max_tokens": 2,
    }
    assert _words(body) == "2 tok3 tok4"  # the cut token's rest, then max_tokens more


def test_a_continuation_is_refused_as_vllm_refuses_it() -> None:
    from prsm.performance.fakes._policy import continuation

    ask = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "tok0"}]
    with pytest.raises(ValueError, match="add_generation_prompt"):
        continuation({"messages": ask, "continue_final_message": True})
    with pytest.raises(ValueError, match="final assistant message"):
        continuation({"messages": ask[:1], "continue_final_message": True,
                      "add_generation_prompt": False})  # fmt: skip
    assert continuation({"messages": ask}) is None


def test_a_completion_whose_prompt_ends_with_its_answer_goes_on_from_there() -> None:
    whole = _words({"prompt": "say hello "})
    assert whole == "tok0" + "".join(f" tok{i}" for i in range(1, 16))
    for cut in (4, 9, 14, len(whole) - 1):
        prefix = whole[:cut]
        assert prefix + _words({"prompt": "say hello " + prefix}) == whole
    assert _words({"prompt": "say hello tok0 tok1", "max_tokens": 2}) == " tok2 tok3"
    # text after its answer, or none of it: an ordinary prompt, answered from the start
    assert _words({"prompt": "tok0 tok1 and then"}) == whole
    assert _words({"prompt": ["tok0", "tok1"]}) == whole
