"""The dashboard room's page and assets, and the gateway serving them (in process)."""

from __future__ import annotations

import hashlib
import re

import httpx
import pytest

from prsm.performance.dashboard import Dashboard
from prsm.performance.dashboard._page import (
    CSP,
    FILES,
    HISTORY_BACKFILL,
    POLLED_ROUTES,
    PREFIX,
    SCALING_RECHECK,
    SCALING_ROUTE,
    UPLOT_FILES,
    read_files,
)
from prsm.performance.gateway._app import GatewayApp
from prsm.performance.gateway._settings import GatewaySettings, TenantSettings, hash_key
from prsm.performance.monitoring._stages import STAGES
from prsm.performance.orchestrator._orchestrator import PerformanceOrchestrator
from prsm.performance.routing._node import NodeSpec


def test_every_packaged_file_is_there_and_uplot_is_the_vendored_build() -> None:
    files = read_files()
    assert set(files) == set(FILES)
    assert b"uPlot" in files["uPlot.iife.min.js"] and b"MIT License" in files["uPlot.LICENSE"]
    # the pins scripts/vendor_uplot.py checks: a changed file must come from a new vendoring
    for name, (_, digest) in UPLOT_FILES.items():
        assert hashlib.sha256(files[name]).hexdigest() == digest, name


def test_the_page_names_each_asset_with_its_digest_and_holds_no_inline_script() -> None:
    d = Dashboard()
    page = d.page.decode()
    for name, version in d.versions.items():
        if name.endswith((".js", ".css")):
            assert f"/dashboard/static/{name}?v={version}" in page
    assert "{{" not in page
    # no inline script or style (the CSP forbids them), and nothing from another origin
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)
    assert "<style" not in page and " style=" not in page and "on" + "click=" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    for name in ("dashboard.js", "dashboard.css"):
        assert b"http://" not in d.assets[name] and b"https://" not in d.assets[name]


def test_the_script_polls_and_backfills_what_the_room_says() -> None:
    """The benchmark's stand-in for an open page (benchmarks/monitoring.py) reads these."""
    js = read_files()["dashboard.js"].decode()
    for route in (*POLLED_ROUTES, SCALING_ROUTE):
        assert f'"{route}"' in js, route
    assert f"var SCALING_RECHECK = {SCALING_RECHECK}," in js
    metrics = set(re.findall(r'metric: "([a-z_.0-9]+)"', js))
    assert metrics == {m for m, _ in HISTORY_BACKFILL}
    stages = re.search(r"var STAGES = \[([^\]]*)\]", js)
    assert stages is not None and stages.group(1) == ", ".join(f'"{s}"' for s in STAGES)


def test_page_is_never_cached_and_carries_a_self_only_policy() -> None:
    reply = Dashboard().answer(PREFIX)
    assert reply is not None and reply.status == 200
    headers = dict(reply.headers)
    assert reply.content_type == (b"content-type", b"text/html; charset=utf-8")
    assert headers[b"cache-control"] == b"no-store"
    assert headers[b"content-security-policy"] == CSP
    assert b"default-src 'none'" in CSP and b"script-src 'self';" in CSP
    assert b"unsafe-inline" not in CSP and b"unsafe-eval" not in CSP
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"x-frame-options"] == b"DENY"
    assert Dashboard().answer(PREFIX + "/") is not None


def test_an_asset_is_immutable_only_at_its_current_version() -> None:
    d = Dashboard()
    v = d.versions["uPlot.iife.min.js"]
    fresh = d.answer("/dashboard/static/uPlot.iife.min.js", f"v={v}".encode())
    assert fresh is not None and fresh.body == d.assets["uPlot.iife.min.js"]
    assert dict(fresh.headers)[b"cache-control"] == b"private, max-age=31536000, immutable"
    assert dict(fresh.headers)[b"etag"] == f'"{v}"'.encode()
    assert fresh.content_type[1] == b"text/javascript; charset=utf-8"
    old = d.answer("/dashboard/static/uPlot.iife.min.js", b"v=0000")
    assert old is not None and dict(old.headers)[b"cache-control"] == b"no-cache"
    css = d.answer("/dashboard/static/dashboard.css")
    assert css is not None and css.content_type[1] == b"text/css; charset=utf-8"


@pytest.mark.parametrize(
    "path", ["/dashboard/static/", "/dashboard/static/index.html", "/dashboard/static/../x",
             "/dashboard/static/nope.js", "/dashboard/other"]
)  # fmt: skip
def test_nothing_but_the_listed_files_is_served(path: str) -> None:
    d = Dashboard()
    assert d.answer(path) is None or not Dashboard.handles(path)


def test_a_page_naming_a_missing_asset_is_refused() -> None:
    with pytest.raises(ValueError, match="names an asset"):
        Dashboard({"index.html": b"<script src='/dashboard/static/x.js?v={{x.js}}'></script>"})
    with pytest.raises(FileNotFoundError, match=r"index\.html"):
        Dashboard({"a.js": b""})


# --- served by the gateway app (in process)
def _client(settings: GatewaySettings | None = None, host: str = "127.0.0.1") -> httpx.AsyncClient:
    perf = PerformanceOrchestrator(nodes=[NodeSpec(id="n0", models=["m"])], upstream=None)
    app = GatewayApp(perf, settings)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}")


async def test_the_gateway_serves_the_page_and_assets_to_a_local_caller() -> None:
    async with _client() as c:
        page = await c.get("/dashboard")
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == CSP.decode()
        src = re.search(r'src="(/dashboard/static/dashboard\.js\?v=\w+)"', page.text)
        assert src is not None
        js = await c.get(src.group(1))
        assert js.status_code == 200 and "immutable" in js.headers["cache-control"]
        assert (await c.get("/dashboard/static/missing.js")).status_code == 404
        assert (await c.post("/dashboard")).status_code == 405


async def test_without_admin_keys_only_local_callers_get_the_page() -> None:
    async with _client(host="evil.example") as c:  # a DNS-rebinding page's Host
        assert (await c.get("/dashboard")).status_code == 403
    async with _client() as c:
        r = await c.get("/dashboard", headers={"origin": "http://evil.example"})
        assert r.status_code == 403


async def test_with_admin_keys_the_page_is_served_but_its_data_needs_the_key() -> None:
    settings = GatewaySettings(
        tenants=(TenantSettings("admin", (hash_key("sk-admin"),), admin=True),)
    )
    async with _client(settings, host="gw.example") as c:
        page = await c.get("/dashboard")  # a browser's navigation: no key
        assert page.status_code == 200 and "sk-admin" not in page.text
        assert (await c.get("/admin/metrics/current")).status_code == 401
        ok = await c.get("/admin/nodes", headers={"authorization": "Bearer sk-admin"})
        assert ok.status_code == 200
