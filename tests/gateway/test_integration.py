"""The real gateway and real upstream simulators as processes on free loopback ports."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from prsm.performance.gateway._settings import hash_key
from tests.conftest import RedisServer, free_port
from tests.gateway.procs import Proc, node, start_gateway, start_sim, wait_for

pytestmark = pytest.mark.integration

ADMIN = {"authorization": "Bearer sk-admin"}
SMALL = {"authorization": "Bearer sk-small"}
TENANTS = [
    {"name": "admin", "key_sha256": [hash_key("sk-admin")], "admin": True},
    {
        "name": "small",
        "key_sha256": [hash_key("sk-small")],
        "requests_per_minute": 60,
        "request_burst": 2,
    },
]


def chat(model: str = "sim-chat", **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}], **kw}


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, Proc]]:
    procs = {
        "a": start_sim("a", "--models", "sim-chat,sim-embed", wait=False),
        "b": start_sim("b", "--models", "b-chat,sim-embed", wait=False),
        "k1": start_sim("k1", "--models", "kill-chat", wait=False),
        "k2": start_sim("k2", "--models", "kill-chat", wait=False),
        "slow": start_sim("slow", "--models", "slow-chat", "--latency", "5", wait=False),
        "paced": start_sim(
            "paced", "--models", "paced-chat", "--tokens-per-second", "20", wait=False
        ),
    }
    for p in procs.values():
        p.wait_ready()
    yield procs
    for p in procs.values():
        p.stop()


@pytest.fixture(scope="module")
def gateway(sims: dict[str, Proc], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    config = {
        "nodes": [
            node("a", sims["a"], ["sim-chat", "sim-embed"], timeout=5),
            node("b", sims["b"], ["b-chat", "sim-embed"], timeout=5),
            node("k1", sims["k1"], ["kill-chat"], timeout=5),
            node("k2", sims["k2"], ["kill-chat"], timeout=5),
            node("slow", sims["slow"], ["slow-chat"], timeout=0.3),
            node("paced", sims["paced"], ["paced-chat"], timeout=5),
            {"id": "dead", "url": f"http://127.0.0.1:{free_port()}/v1", "models": ["dead-chat"]},
        ],
        "gateway": {"max_body_bytes": 4096, "tenants": TENANTS},
    }
    gw = start_gateway(tmp_path_factory.mktemp("gw"), config)
    yield gw
    gw.stop()


@pytest.fixture
def client(gateway: Proc) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers=ADMIN, timeout=10) as c:
        yield c


def test_routes_each_model_to_the_nodes_serving_it(client: httpx.Client) -> None:
    for _ in range(3):
        r = client.post("/v1/chat/completions", json=chat("sim-chat"))
        assert r.status_code == 200 and r.json()["system_fingerprint"] == "a"
        r = client.post("/v1/completions", json={"model": "b-chat", "prompt": "x"})
        assert r.status_code == 200 and r.json()["system_fingerprint"] == "b"
    answered = {
        client.post("/v1/embeddings", json={"model": "sim-embed", "input": "x"}).headers[
            "x-prsm-node"
        ]
        for _ in range(12)
    }
    assert answered <= {"a", "b"}
    r = client.post("/v1/chat/completions", json=chat())
    assert r.headers["x-request-id"] and float(r.headers["x-prsm-added-time"]) >= 0


def test_node_killed_mid_test_requests_still_succeed(
    client: httpx.Client, sims: dict[str, Proc]
) -> None:
    before = [client.post("/v1/chat/completions", json=chat("kill-chat")) for _ in range(6)]
    assert {r.status_code for r in before} == {200}
    victim = before[-1].headers["x-prsm-node"]  # the node the balancer favours now
    survivor = ({"k1", "k2"} - {victim}).pop()
    sims[victim].kill()
    after = [client.post("/v1/chat/completions", json=chat("kill-chat")) for _ in range(20)]
    assert {r.status_code for r in after} == {200}
    assert {r.headers["x-prsm-node"] for r in after} == {survivor}
    nodes = {n["id"]: n for n in client.get("/admin/nodes").json()["nodes"]}
    assert nodes[victim]["stats"]["failures"] >= 1  # it was tried, failed, and was retried


def test_streams_pass_through_chunk_by_chunk(client: httpx.Client) -> None:
    raw_chunks: list[bytes] = []
    with client.stream(
        "POST", "/v1/chat/completions", json=chat("paced-chat", stream=True, max_tokens=5)
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw_chunks.extend(r.iter_raw())
    body = b"".join(raw_chunks)
    events = [e for e in body.split(b"\n\n") if e]
    assert len(events) == 6 and events[-1] == b"data: [DONE]"
    assert len(raw_chunks) >= 3  # the tokens came as the upstream paced them, not in one piece


def test_auth_and_in_memory_rate_limit(gateway: Proc) -> None:
    with httpx.Client(base_url=gateway.url, timeout=10) as c:
        assert c.post("/v1/chat/completions", json=chat()).status_code == 401
        bad = c.post("/v1/chat/completions", json=chat(), headers={"authorization": "Bearer x"})
        assert bad.status_code == 401
        assert bad.json()["error"]["type"] == "authentication_error"
        codes = [c.post("/v1/chat/completions", json=chat(), headers=SMALL) for _ in range(3)]
        assert [r.status_code for r in codes] == [200, 200, 429]
        assert int(codes[2].headers["retry-after"]) >= 1
        assert codes[2].json()["error"]["code"] == "rate_limit_exceeded"


def test_each_error_status(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", content=b'{"model": ')
    assert r.status_code == 400
    r = client.post("/v1/chat/completions", json={"model": "sim-chat", "messages": [{"role": 1}]})
    assert r.status_code == 422 and r.json()["error"]["param"] == "messages[0].role"
    r = client.post("/v1/chat/completions", json=chat("gpt-nonexistent"))
    assert r.status_code == 404 and "sim-chat" in r.json()["error"]["message"]
    r = client.post("/v1/chat/completions", json=chat(pad="x" * 5000))
    assert r.status_code == 413
    r = client.post("/v1/chat/completions", json=chat("dead-chat"))
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_healthy_node"
    r = client.post("/v1/chat/completions", json=chat("slow-chat"))
    assert r.status_code == 504 and r.json()["error"]["type"] == "timeout"


def test_openai_client_works_unchanged(gateway: Proc) -> None:
    oc = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-admin", max_retries=0)
    completion = oc.chat.completions.create(
        model="sim-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )
    assert completion.choices[0].message.content == "tok0 tok1 tok2"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    text = oc.completions.create(model="b-chat", prompt="hi", max_tokens=2)
    assert text.choices[0].text == "tok0 tok1"
    emb = oc.embeddings.create(model="sim-embed", input=["a", "b"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 384
    models = {m.id for m in oc.models.list()}
    assert {"sim-chat", "b-chat", "sim-embed"} <= models
    stream = oc.chat.completions.create(
        model="sim-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True
    )
    parts = [c.choices[0].delta.content for c in stream if c.choices]
    assert "".join(p for p in parts if p) == "tok0 tok1 tok2 tok3"
    with pytest.raises(openai.NotFoundError):
        oc.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="bad", max_retries=0).models.list()


def test_limits_are_shared_through_redis(
    sims: dict[str, Proc], tmp_path: Path, redis_server: RedisServer
) -> None:
    config = {
        "nodes": [node("a", sims["a"], ["sim-chat"])],
        "gateway": {
            "redis_url": redis_server.url,
            "ratelimit_prefix": f"test-{free_port()}:",
            "tenants": [
                {
                    "name": "shared",
                    "key_sha256": [hash_key("sk-shared")],
                    "requests_per_minute": 30,
                    "request_burst": 3,
                }
            ],
        },
    }
    g1, g2 = start_gateway(tmp_path, config), start_gateway(tmp_path, config)
    try:
        h = {"authorization": "Bearer sk-shared"}
        codes = [
            httpx.post(f"{g.url}/v1/chat/completions", json=chat(), headers=h).status_code
            for g in (g1, g2, g1, g2)
        ]
        assert codes == [200, 200, 200, 429]
    finally:
        g1.stop()
        g2.stop()


def test_graceful_shutdown_finishes_streams_then_exits(
    sims: dict[str, Proc], tmp_path: Path
) -> None:
    config = {
        "nodes": [node("paced", sims["paced"], ["paced-chat"], timeout=5)],
        "gateway": {"shutdown_grace": 10},
    }
    gw = start_gateway(tmp_path, config)
    got: list[bytes] = []
    started = threading.Event()

    def read_stream() -> None:
        body = chat("paced-chat", stream=True, max_tokens=10)  # about half a second
        with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, timeout=10) as r:
            for chunk in r.iter_raw():
                got.append(chunk)
                started.set()

    reader = threading.Thread(target=read_stream)
    reader.start()
    try:
        assert started.wait(10)
        gw.terminate()  # SIGTERM while the stream is in flight
        reader.join(15)
        assert gw.proc.wait(timeout=15) == 0
        assert b"".join(got).endswith(b"data: [DONE]\n\n")
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{gw.url}/healthz")
    finally:
        gw.stop()


def test_serve_without_config_or_nodes_says_so() -> None:
    """No config file and local workers switched off (the defaults with workers are tested in
    test_default_serve.py): /healthz answers and /v1/* says no nodes are configured."""
    port = free_port()
    gw = Proc(["serve", "--port", str(port)], port, {"PRSM_WORKERS__ENABLED": "false"})
    try:
        assert httpx.get(f"{gw.url}/healthz").status_code == 200
        r = httpx.post(f"{gw.url}/v1/chat/completions", json=chat())
        assert r.status_code == 503 and "no nodes are configured" in r.json()["error"]["message"]
    finally:
        gw.stop()


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("gateway:\n  port: 8000\n  shutdown_grace: soon\n", "gateway.shutdown_grace"),
        ("nodes:\n  - id: n1\n    url: http://127.0.0.1:9/v1\n    modles: [m]\n", "node[n1]"),
    ],
)
def test_bad_config_file_fails_at_start_naming_file_and_field(
    tmp_path: Path, text: str, field: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    out = subprocess.run(
        [sys.executable, "-m", "prsm.performance.cli", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 2
    assert f"{path}: {field}" in out.stderr
    assert "Traceback" not in out.stderr


def test_two_workers_share_the_port_and_stop_together(
    sims: dict[str, Proc], tmp_path: Path
) -> None:
    port = free_port()
    path = tmp_path / "two.yaml"
    config = {"nodes": [node("a", sims["a"], ["sim-chat"])], "gateway": {"port": port},
              "workers": {"enabled": False}}  # fmt: skip
    path.write_text(yaml.safe_dump(config))
    data = tmp_path / "data"  # a history file of their own: no other test's series in it
    env = {"PRSM_DATA_DIR": str(data)}
    gw = Proc(["serve", "--config", str(path), "--workers", "2"], port, env)
    try:
        codes = {
            httpx.post(f"{gw.url}/v1/chat/completions", json=chat()).status_code
            for _ in range(8)  # a new connection each: the kernel spreads them
        }
        assert codes == {200}

        def seen_by() -> tuple[str, set[str]]:
            """Which process answered (one connection: the same process answers both) and
            the processes whose series it reads in the history."""
            with httpx.Client(base_url=gw.url, timeout=10) as c:
                me = c.get("/admin/metrics/history").json()["labels"]["instance"]
                query = {"metric": "system.cpu_usage", "since": "5m"}
                r = c.get("/admin/metrics/history", params=query)
            assert r.status_code == 200, r.text
            return me, {s["labels"]["instance"] for s in r.json()["series"]}

        both = {"gateway-0", "gateway-1"}
        assert wait_for(lambda: seen_by()[1] == both), "the history never held both processes"
        answered: set[str] = set()
        for _ in range(200):  # until each process has answered (the kernel picks)
            me, seen = seen_by()
            assert seen == both, f"{me} reads only {seen}"
            answered.add(me)
            if answered == both:
                break
        assert answered == both
        gw.terminate()
        assert gw.proc.wait(timeout=20) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{gw.url}/healthz")
    finally:
        gw.stop()
