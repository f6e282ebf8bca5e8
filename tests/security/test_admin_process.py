"""Defect 3 end to end: a real gateway process, a real "attacker" HTTP server on loopback.

Before the fix, ``POST /admin/nodes`` with ``url`` pointing at the attacker and
``api_key_env`` naming a secret made the gateway send that secret there on the next request.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from prsm.performance.gateway._settings import hash_key
from tests.gateway.procs import node, start_gateway, start_sim
from tests.security.servers import serving

pytestmark = pytest.mark.integration

SECRET = "sk-live-do-not-leak-0123456789"


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        _Recorder.seen.append(self.headers.get("authorization") or "")
        self.send_response(500)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def attacker() -> Iterator[str]:
    _Recorder.seen = []
    with serving(_Recorder) as url:
        yield url


def test_admin_api_cannot_send_a_secret_to_another_host(tmp_path: Path, attacker: str) -> None:
    sim = start_sim("real", "--models", "m", "--api-key", SECRET)
    gw = start_gateway(
        tmp_path,
        {"nodes": [node("real", sim, ["m"], api_key_env="PRSM_TEST_NODE_KEY")]},
        env={"PRSM_TEST_NODE_KEY": SECRET},
    )
    try:
        chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=gw.url, timeout=10) as c:
            assert c.post("/v1/chat/completions", json=chat).status_code == 200
            evil = {"id": "evil", "models": ["m"], "url": attacker,
                    "api_key_env": "PRSM_TEST_NODE_KEY", "weight": 1000}  # fmt: skip
            r = c.post("/admin/nodes", json=evil)  # local caller, no admin key set
            assert r.status_code == 422, r.text
            assert r.json()["error"]["param"] == "node[evil].url"
            r = c.post("/admin/nodes", json={**evil, "api_key_env": "HOME"})
            assert r.status_code == 422
            # a browser page on another origin cannot use the admin API either
            r = c.post("/admin/nodes", json={**evil, "api_key_env": None},
                       headers={"origin": "http://evil.example"})  # fmt: skip
            assert r.status_code == 403
            for _ in range(5):
                assert c.post("/v1/chat/completions", json=chat).status_code == 200
            nodes = [n["id"] for n in c.get("/admin/nodes").json()["nodes"]]
            assert nodes == ["real"]
        assert _Recorder.seen == []
    finally:
        gw.stop()
        sim.stop()


def test_gateway_with_an_admin_key_checks_it(tmp_path: Path) -> None:
    sim = start_sim("real", "--models", "m")
    gw = start_gateway(
        tmp_path,
        {"nodes": [node("real", sim, ["m"])],
         "gateway": {"admin_key_sha256": [hash_key("sk-adm")]}},
    )  # fmt: skip
    try:
        with httpx.Client(base_url=gw.url, timeout=10) as c:
            assert c.get("/admin/nodes").status_code == 401
            assert c.get("/admin/breakers", headers={"x-api-key": "nope"}).status_code == 401
            ok = c.get("/admin/nodes", headers={"authorization": "Bearer sk-adm"})
            assert ok.status_code == 200
    finally:
        gw.stop()
        sim.stop()
