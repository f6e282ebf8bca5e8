"""The client over TLS (a local TLS server with a self-signed certificate made in the test)
and through HTTP proxies (``HTTPS_PROXY`` with ``CONNECT``, ``HTTP_PROXY``, ``NO_PROXY``)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from prsm.performance.errors import ConnectionFailed, UpstreamUnavailableError
from prsm.performance.fakes import SimSettings, UpstreamSimulator
from prsm.performance.http._client import HttpPool, content
from prsm.performance.http._proxy import Proxy, proxy_for
from prsm.performance.http._settings import HttpClientSettings
from prsm.performance.routing._node import NodeSpec
from prsm.performance.types import AIRequest
from prsm.performance.upstreams._http import HttpUpstream

from .tls_proxy import TinyProxy, self_signed, server_context

pytestmark = pytest.mark.integration

CHAT = {"model": "sim-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.fixture
async def tls_sim(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    cert, key = self_signed(tmp_path)
    sim = UpstreamSimulator(SimSettings(port=0, name="tls"))
    port = await sim.start(ssl=server_context(cert, key))
    yield port, cert
    await sim.close()


@pytest.fixture
async def plain_sim() -> AsyncIterator[int]:
    sim = UpstreamSimulator(SimSettings(port=0, name="plain"))
    port = await sim.start()
    yield port
    await sim.close()


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[TinyProxy, str]]:
    p = TinyProxy()
    url = await p.start()
    yield p, url
    await p.close()


def _chat(pool: HttpPool) -> bytes:
    return content(pool.request_head("/v1/chat/completions"), orjson.dumps(CHAT))


async def test_https_node_with_its_ca_bundle(tls_sim: tuple[int, Path]) -> None:
    port, cert = tls_sim
    node = NodeSpec(id="t", url=f"https://127.0.0.1:{port}/v1", ca_bundle=str(cert), timeout=5)
    async with HttpUpstream() as up:
        answer = await up.execute(node, AIRequest(model="sim-chat", payload=CHAT))
    assert answer.content["system_fingerprint"] == "tls"


async def test_https_node_with_an_unknown_authority_is_refused(tls_sim: tuple[int, Path]) -> None:
    port, _ = tls_sim
    node = NodeSpec(id="t", url=f"https://127.0.0.1:{port}/v1", timeout=5)
    async with HttpUpstream() as up:
        with pytest.raises(UpstreamUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
            await up.execute(node, AIRequest(model="sim-chat", payload=CHAT))


async def test_https_node_with_verify_off(tls_sim: tuple[int, Path]) -> None:
    port, _ = tls_sim
    node = NodeSpec(id="t", url=f"https://127.0.0.1:{port}/v1", tls_verify=False, timeout=5)
    request = AIRequest(model="sim-chat", payload={**CHAT, "stream": True})
    async with HttpUpstream() as up:
        stream = [c async for c in up.stream(node, request)]
    assert b"".join(stream).endswith(b"data: [DONE]\n\n")


async def test_https_through_a_connect_tunnel(
    tls_sim: tuple[int, Path], proxy: tuple[TinyProxy, str]
) -> None:
    port, cert = tls_sim
    tiny, url = proxy
    user_url = url.replace("http://", "http://ann:s%3Acret@")
    pool = HttpPool(
        f"https://127.0.0.1:{port}",
        HttpClientSettings(ca_bundle=str(cert)),
        environ={"HTTPS_PROXY": user_url, "HTTP_PROXY": "http://unused:1"},
    )
    try:
        first = await pool.request(_chat(pool))
        second = await pool.request(_chat(pool))  # the tunnel is kept alive
    finally:
        await pool.aclose()
    assert first.status == second.status == 200
    assert tiny.lines == [b"CONNECT 127.0.0.1:%d HTTP/1.1" % port]
    assert tiny.auth == [b"Basic " + base64.b64encode(b"ann:s:cret")]


async def test_http_through_a_proxy_in_absolute_form(
    plain_sim: int, proxy: tuple[TinyProxy, str]
) -> None:
    tiny, url = proxy
    pool = HttpPool(f"http://127.0.0.1:{plain_sim}", environ={"http_proxy": url})
    try:
        answer = await pool.request(_chat(pool))
    finally:
        await pool.aclose()
    assert answer.status == 200
    assert tiny.lines == [b"POST http://127.0.0.1:%d/v1/chat/completions HTTP/1.1" % plain_sim]


async def test_no_proxy_bypasses_the_proxy(plain_sim: int, proxy: tuple[TinyProxy, str]) -> None:
    tiny, url = proxy
    env = {"HTTP_PROXY": url, "NO_PROXY": "example.com,127.0.0.1"}
    pool = HttpPool(f"http://127.0.0.1:{plain_sim}", environ=env)
    try:
        assert (await pool.request(_chat(pool))).status == 200
    finally:
        await pool.aclose()
    assert tiny.lines == []


async def test_a_proxy_that_refuses_the_tunnel_is_a_failure_before_sending(
    tls_sim: tuple[int, Path], plain_sim: int
) -> None:
    port, cert = tls_sim
    # the simulator is no proxy: it answers CONNECT with an error
    pool = HttpPool(
        f"https://127.0.0.1:{port}",
        HttpClientSettings(ca_bundle=str(cert), proxy=f"http://127.0.0.1:{plain_sim}"),
    )
    try:
        with pytest.raises(ConnectionFailed, match="refused CONNECT") as err:
            await pool.request(_chat(pool))
    finally:
        await pool.aclose()
    assert not err.value.sent


def test_which_proxy_an_origin_takes() -> None:
    env = {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".internal,10.0.0.5"}
    assert proxy_for("https", "api.example.com", environ=env) == Proxy("p", 3128)
    assert proxy_for("https", "model.internal", environ=env) is None
    assert proxy_for("https", "10.0.0.5", environ=env) is None
    assert proxy_for("http", "api.example.com", environ=env) is None  # no HTTP_PROXY
    assert proxy_for("https", "x", environ=env, trust_env=False) is None
    assert proxy_for("https", "x", explicit="http://q:8080", trust_env=False) == Proxy("q", 8080)
    assert proxy_for("https", "x", environ={"https_proxy": "p2:1", "HTTPS_PROXY": "p:2"}) == Proxy(
        "p2", 1
    )
