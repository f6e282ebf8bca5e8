"""Defect 3: the admin API could read out any environment variable.

``POST /admin/nodes`` took any ``url`` with any ``api_key_env``, the gateway then sent that
variable as a bearer token to that URL, and with no tenants every caller was admin. Now: an
admin key whenever the gateway listens beyond loopback (it refuses to start otherwise), keys
only from variables the config allows and only towards their hosts, posted nodes checked as
config-file nodes are, and the check made on every admin path.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from prsm.performance.cli import main
from prsm.performance.errors import ConfigError
from prsm.performance.gateway._app import GatewayApp
from prsm.performance.gateway._settings import (
    GatewaySettings,
    NodeKeySettings,
    TenantSettings,
    check_exposure,
    hash_key,
    is_loopback,
)
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.routing._node import NodeSpec
from prsm.performance.upstreams._dispatch import DispatchUpstream
from prsm.performance.upstreams._http import HttpUpstream

ADMIN_KEY = "sk-admin-secret"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
SECRET_ENV = "PRSM_TEST_UPSTREAM_SECRET"
OTHER_ENV = "PRSM_TEST_SOME_OTHER_SECRET"


def _app(settings: GatewaySettings | None = None, *, http: bool = True) -> GatewayApp:
    """An app whose pipeline is what ``prsm-perf serve`` builds: HTTP behind a dispatcher,
    with one config-file node that takes its key from SECRET_ENV."""
    config_node = NodeSpec(
        id="openai", models=["m"], url="https://api.example.com/v1", api_key_env=SECRET_ENV
    )
    upstream: Any = (
        DispatchUpstream({}, default=HttpUpstream())
        if http
        else DispatchUpstream({"fake": HttpUpstream()})
    )
    perf = PerformanceOrchestrator(nodes=[config_node], upstream=upstream)
    return GatewayApp(perf, settings)


def _client(app: GatewayApp, *, base: str = "http://127.0.0.1:8000", client: Any = None) -> Any:
    transport = httpx.ASGITransport(app=app, client=client or ("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url=base)


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "sk-upstream-do-not-leak")
    monkeypatch.setenv(OTHER_ENV, "sk-other-do-not-leak")


# --- who may call it -------------------------------------------------------------------------
def test_listening_beyond_loopback_needs_an_admin_key() -> None:
    with pytest.raises(ConfigError) as info:
        GatewaySettings(host="0.0.0.0")
    assert info.value.field == "gateway.admin_key_sha256"
    assert "beyond loopback" in info.value.problem
    GatewaySettings(host="0.0.0.0", admin_key_sha256=(hash_key(ADMIN_KEY),))
    admin_tenant = TenantSettings("ops", (hash_key("k"),), admin=True)
    GatewaySettings(host="::", tenants=(admin_tenant,))
    for host in ("127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost"):
        assert is_loopback(host)
        GatewaySettings(host=host)
    for host in ("0.0.0.0", "::", "10.0.0.1", "example.com", "localhost.example.com"):
        assert not is_loopback(host)


def test_serve_refuses_to_start_open_beyond_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    # the --host override is checked before anything starts (no port is bound here)
    code = main(["serve", "--host", "0.0.0.0", "--port", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "gateway.admin_key_sha256" in err and "beyond loopback" in err
    with pytest.raises(ConfigError):
        check_exposure(GatewaySettings(), "192.0.2.1")


async def test_every_admin_path_needs_the_key_when_one_is_set() -> None:
    small = TenantSettings("small", (hash_key("sk-small"),))
    settings = GatewaySettings(admin_key_sha256=(hash_key(ADMIN_KEY),), tenants=(small,))
    app = _app(settings)
    paths = [
        ("GET", "/admin/nodes"), ("GET", "/admin/breakers"), ("POST", "/admin/nodes"),
        ("DELETE", "/admin/nodes/openai"), ("POST", "/admin/nodes/openai/drain"),
        ("GET", "/admin/anything/new"), ("GET", "/admin"),
    ]  # fmt: skip
    async with _client(app) as c:
        for method, path in paths:
            r = await c.request(method, path, json={"id": "x"})
            assert r.status_code == 401, (method, path, r.text)
            assert r.json()["error"]["type"] == "authentication_error"
            r = await c.request(method, path, json={"id": "x"}, headers={"x-api-key": "wrong"})
            assert r.status_code == 401, (method, path)
            r = await c.request(
                method, path, json={"id": "x"}, headers={"authorization": "Bearer sk-small"}
            )
            assert r.status_code == 403, (method, path)
            assert r.json()["error"]["type"] == "permission_error"
        assert (await c.get("/admin/nodes", headers=ADMIN)).status_code == 200
        assert (await c.get("/admin/breakers", headers={"x-api-key": ADMIN_KEY})).status_code == 200
        # the node was never touched by the refused calls
        nodes = (await c.get("/admin/nodes", headers=ADMIN)).json()["nodes"]
        assert [(n["id"], n["state"]) for n in nodes] == [("openai", "active")]


async def test_no_tenants_no_key_admin_is_local_only() -> None:
    app = _app(GatewaySettings())  # the old "every caller is admin" set-up
    body = {"id": "n2", "models": ["m"], "url": "http://127.0.0.1:9/v1"}
    async with _client(app) as c:
        assert (await c.post("/admin/nodes", json=body)).status_code == 201
        # a web page in the user's browser: DNS rebinding (Host) or a cross-site form (Origin)
        r = await c.post("/admin/nodes", json=body, headers={"host": "evil.example:8000"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        r = await c.delete("/admin/nodes/n2", headers={"origin": "https://evil.example"})
        assert r.status_code == 403
        r = await c.get("/admin/nodes", headers={"origin": "http://localhost:3000"})
        assert r.status_code == 200
        for bad in ("[::1", "http://[127.0.0.1"):  # unreadable: refused, not a crash
            r = await c.get("/admin/nodes", headers={"origin": bad})
            assert r.status_code == 403, bad
    async with _client(app, client=("203.0.113.9", 4000)) as c:  # served on 0.0.0.0 by ASGI
        assert (await c.get("/admin/nodes")).status_code == 403
    # /v1 still needs no key without tenants
    async with _client(app) as c:
        assert (await c.get("/v1/models")).status_code == 200


async def test_admin_off_when_not_loopback_and_no_key() -> None:
    # an app made as a library for a public host, given an admin tenant-less config by hand
    settings = GatewaySettings(admin_key_sha256=(hash_key(ADMIN_KEY),))
    object.__setattr__(settings, "admin_key_sha256", ())
    object.__setattr__(settings, "host", "0.0.0.0")
    async with _client(_app(settings)) as c:
        r = await c.get("/admin/nodes")
        assert r.status_code == 403 and "admin API is off" in r.json()["error"]["message"]


# --- what a posted node may be ---------------------------------------------------------------
async def test_posted_node_may_not_send_a_key_elsewhere() -> None:
    settings = GatewaySettings(
        admin_key_sha256=(hash_key(ADMIN_KEY),),
        node_keys=(NodeKeySettings(OTHER_ENV, ("*.allowed.example",)),),
    )
    app = _app(settings)
    async with _client(app) as c:

        async def post(**node: Any) -> httpx.Response:
            r: httpx.Response = await c.post(
                "/admin/nodes", json={"id": "n", "models": ["m"], **node}, headers=ADMIN
            )
            return r

        # a variable nobody allowed (the defect: PATH, AWS_SECRET_ACCESS_KEY…)
        r = await post(url="http://attacker.example/v1", api_key_env="HOME")
        assert r.status_code == 422
        assert r.json()["error"]["param"] == "node[n].api_key_env"
        # the config node's variable, but towards another host
        r = await post(url="http://attacker.example/v1", api_key_env=SECRET_ENV)
        assert r.status_code == 422 and r.json()["error"]["param"] == "node[n].url"
        assert "sk-upstream-do-not-leak" not in r.text
        # updating the config node itself to point elsewhere is refused too
        r = await c.post(
            "/admin/nodes",
            json={"id": "openai", "url": "http://attacker.example", "api_key_env": SECRET_ENV},
            headers=ADMIN,
        )
        assert r.status_code == 422
        # allowed: the config node's variable towards its own host; a listed one towards
        # a host under its domain; no key at all
        assert (
            await post(url="https://api.example.com/v2", api_key_env=SECRET_ENV)
        ).status_code == 201
        r = await c.post(
            "/admin/nodes",
            json={"id": "o", "url": "https://eu.allowed.example/v1", "api_key_env": OTHER_ENV},
            headers=ADMIN,
        )
        assert r.status_code == 201
        r = await post(url="https://allowed.example.evil.example/v1", api_key_env=OTHER_ENV)
        assert r.status_code == 422
        r = await c.post(
            "/admin/nodes", json={"id": "p", "url": "http://127.0.0.1:9/v1"}, headers=ADMIN
        )
        assert r.status_code == 201


@pytest.mark.parametrize(
    ("node", "param"),
    [
        ({"models": ["m"], "url": "http://h/v1"}, "node.id"),
        ({"id": "n", "url": "ftp://h/v1"}, "node[n].url"),
        ({"id": "n"}, "node[n].url"),  # an HTTP node needs a URL, as in the config file
        ({"id": "n", "url": "http://h", "weight": "heavy"}, "node[n].weight"),
        ({"id": "n", "url": "http://h", "max_concurrency": True}, "node[n].max_concurrency"),
        ({"id": "n", "url": "http://h", "models": "m"}, "node[n].models"),
        ({"id": "n", "url": "http://h", "timeout": -1}, "node[n].timeout"),
        ({"id": "n", "url": "http://h", "meta": {"upstream": "local"}}, "node[n].meta.upstream"),
        ({"id": "n", "url": "http://h", "colour": "red"}, "node[n].colour"),
        ({"id": 7, "url": "http://h"}, "node.id"),
        ({"id": "n", "url": "http://h", "api_key_env": SECRET_ENV + "_UNSET"}, None),
    ],
)
async def test_posted_node_is_checked_like_a_config_node(
    node: dict[str, Any], param: str | None
) -> None:
    app = _app(GatewaySettings(admin_key_sha256=(hash_key(ADMIN_KEY),)))
    async with _client(app) as c:
        r = await c.post("/admin/nodes", json=node, headers=ADMIN)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    if param is not None:
        assert error["param"] == param, error
    else:
        assert "api_key_env" in error["param"]


async def test_library_app_without_http_needs_no_url() -> None:
    app = _app(GatewaySettings(admin_key_sha256=(hash_key(ADMIN_KEY),)), http=False)
    async with _client(app) as c:
        r = await c.post("/admin/nodes", json={"id": "n", "models": ["m"]}, headers=ADMIN)
        assert r.status_code == 201
        r = await c.post(
            "/admin/nodes", json={"id": "f", "meta": {"upstream": "fake"}}, headers=ADMIN
        )
        assert r.status_code == 201


def test_node_key_settings_are_checked() -> None:
    with pytest.raises(ConfigError) as info:
        NodeKeySettings("not a name", ("h",))
    assert info.value.field == "env"
    with pytest.raises(ConfigError) as info:
        NodeKeySettings("OK", ())
    assert info.value.field == "hosts"
    with pytest.raises(ConfigError) as info:
        GatewaySettings(node_keys=(NodeKeySettings("A", ("h",)), NodeKeySettings("A", ("g",))))
    assert info.value.field == "node_keys[1].env"
    with pytest.raises(ConfigError) as info:
        GatewaySettings(admin_key_sha256=("sk-in-clear",))
    assert info.value.field == "admin_key_sha256[0]"
