"""API keys never appear in the gateway's logs, metrics or error bodies (a real gateway
process, every logger at DEBUG, greps all three for every key it saw or holds)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import orjson
import pytest
import yaml

from prsm.performance.caching._keys import request_key
from prsm.performance.gateway._settings import hash_key
from prsm.performance.types import AIRequest, JSONBody
from tests.conftest import free_port, wait_for_port
from tests.gateway.procs import start_sim
from tests.security.servers import serving

pytestmark = pytest.mark.integration

TENANT_KEY = "sk-tenant-7f3a9c2e5b1d"
ADMIN_KEY = "sk-admin-4e8b0d6a2c9f"
UPSTREAM_KEY = "sk-upstream-1c5e9a3f7b2d"
WRONG_KEY = "sk-wrong-9d2b6f0a4e8c"
SECRETS = (TENANT_KEY, ADMIN_KEY, UPSTREAM_KEY, WRONG_KEY)
RUN = ("import logging, sys; logging.basicConfig(level=logging.DEBUG); "
       "from prsm.performance.cli import main; sys.exit(main(sys.argv[1:]))")  # fmt: skip


class _EchoesItsKey(BaseHTTPRequestHandler):
    """An upstream that, like OpenAI's, quotes the key it was sent in its 401 body."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        got = (self.headers.get("authorization") or "").removeprefix("Bearer ")
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {got}",
                                     "type": "invalid_request_error"}}).encode()  # fmt: skip
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def echo_upstream() -> Iterator[str]:
    with serving(_EchoesItsKey) as url:
        yield url


class Gateway:
    """``prsm-perf serve`` with every logger at DEBUG and its output kept."""

    def __init__(self, tmp: Path, config: dict[str, object]) -> None:
        self.port = free_port()
        config = {**config, "workers": {"enabled": False}}
        config["gateway"] = {**config.get("gateway", {}), "port": self.port, "access_log": True}  # type: ignore[dict-item]
        path = tmp / "gw.yaml"
        path.write_text(yaml.safe_dump(config))
        self.log = tmp / "gw.log"
        self.out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RUN, "serve", "--config", str(path)],
            stdout=self.out, stderr=subprocess.STDOUT,
            env={**_env(), "PRSM_TEST_UPSTREAM_KEY": UPSTREAM_KEY},
        )  # fmt: skip
        wait_for_port(self.port, timeout=30)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> str:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.out.close()
        return self.log.read_text(errors="replace")


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def _config(sim_url: str, echo_url: str | None) -> dict[str, object]:
    nodes = [
        {"id": "good", "url": sim_url, "models": ["m"], "api_key_env": "PRSM_TEST_UPSTREAM_KEY"}
    ]
    if echo_url is not None:
        nodes.append({"id": "echo", "url": echo_url, "models": ["echo-m"],
                      "api_key_env": "PRSM_TEST_UPSTREAM_KEY"})  # fmt: skip
    return {
        "nodes": nodes,
        "gateway": {
            "tenants": [{"name": "alpha", "key_sha256": [hash_key(TENANT_KEY)]}],
            "admin_key_sha256": [hash_key(ADMIN_KEY)],
        },
    }


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def _exercise(c: httpx.Client, bodies: list[str], model: str = "m") -> None:
    chat = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    calls = [
        ("POST", "/v1/chat/completions", chat, {"authorization": f"Bearer {TENANT_KEY}"}),
        ("POST", "/v1/chat/completions", chat, {"x-api-key": TENANT_KEY}),
        ("POST", "/v1/chat/completions", chat, {"authorization": f"Bearer {WRONG_KEY}"}),
        ("POST", "/v1/chat/completions", chat, {"authorization": f"Basic {WRONG_KEY}"}),
        ("POST", "/v1/embeddings", {"model": model}, {"authorization": f"Bearer {TENANT_KEY}"}),
        ("POST", "/v1/completions", b"{oops", {"authorization": f"Bearer {TENANT_KEY}"}),
        ("GET", "/v1/models", None, {"x-api-key": WRONG_KEY}),
        ("GET", "/admin/nodes", None, {"authorization": f"Bearer {ADMIN_KEY}"}),
        ("GET", "/admin/nodes", None, {"authorization": f"Bearer {TENANT_KEY}"}),
        ("GET", "/admin/breakers", None, {"authorization": f"Bearer {WRONG_KEY}"}),
        ("POST", "/admin/nodes", {"id": "x", "url": "http://127.0.0.1:9/v1",
                                  "api_key_env": "PRSM_TEST_UPSTREAM_KEY"},
         {"authorization": f"Bearer {ADMIN_KEY}"}),
    ]  # fmt: skip
    for method, path, body, headers in calls:
        content = body if isinstance(body, bytes) else (orjson.dumps(body) if body else None)
        r = c.request(method, path, content=content, headers=headers)
        bodies.append(f"{method} {path} {r.status_code} {r.text}")


def test_keys_never_reach_logs_metrics_or_error_bodies(tmp_path: Path) -> None:
    sim = start_sim("keyed", "--models", "m", "--api-key", UPSTREAM_KEY)
    gw = Gateway(tmp_path, _config(f"{sim.url}/v1", None))
    bodies: list[str] = []
    try:
        with httpx.Client(base_url=gw.url, timeout=10) as c:
            _exercise(c, bodies)
            metrics = c.get("/metrics").text
    finally:
        logs = gw.stop()
        sim.stop()
    assert any(" 200 " in b for b in bodies) and any(" 401 " in b for b in bodies)
    assert "DEBUG" in logs or "INFO" in logs  # the logs were on
    assert _leaks("\n".join(bodies)) == [], bodies
    assert _leaks(metrics) == []
    assert _leaks(logs) == [], logs[-3000:]


def test_a_node_quoting_its_key_does_not_leak_it(tmp_path: Path, echo_upstream: str) -> None:
    sim = start_sim("keyed", "--models", "m", "--api-key", UPSTREAM_KEY)
    gw = Gateway(tmp_path, _config(f"{sim.url}/v1", echo_upstream))
    bodies: list[str] = []
    try:
        with httpx.Client(base_url=gw.url, timeout=10) as c:
            _exercise(c, bodies, model="echo-m")
    finally:
        logs = gw.stop()
        sim.stop()
    assert _leaks("\n".join(bodies)) == [], bodies
    assert _leaks(logs) == []


def test_cache_keys_separate_tenants_for_gateway_bodies() -> None:
    raw = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
    gateway_body = AIRequest(model="m", payload=JSONBody(raw), tenant="alpha")
    library_body = AIRequest(model="m", payload=orjson.loads(raw), tenant="alpha")
    other_tenant = AIRequest(model="m", payload=JSONBody(raw), tenant="beta")
    assert request_key(gateway_body) == request_key(library_body)  # was a TypeError
    assert request_key(gateway_body) != request_key(other_tenant)
