"""The dashboard against a real gateway and upstream simulators, with traffic flowing: the
page in headless Chromium (Debian's ``chromium`` and ``chromium-driver``, through selenium)
asks for the admin key, then shows the same figures as ``/admin/metrics/current`` and the
bottleneck sentence of ``/admin/analytics`` in its findings panel; a
screenshot is saved (``PRSM_DASHBOARD_SCREENSHOT=docs/dashboard.png`` writes the README's).
``prsm-perf top`` prints one frame with the same figures. Under ``CI=true`` a missing
Chromium is a failure, not a skip."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from prsm.performance.cli import main
from prsm.performance.dashboard._findings import FINDINGS_SINCE
from prsm.performance.dashboard._top import ms, pct
from prsm.performance.gateway._settings import hash_key
from tests.conftest import IN_CI
from tests.gateway.procs import Proc, node, start_gateway, start_sim

pytestmark = pytest.mark.integration

ADMIN_KEY = "sk-dash-admin"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
USER = {"authorization": "Bearer sk-dash-user"}
MODEL = "dash-chat"


@pytest.fixture(scope="module")
def sims() -> Iterator[list[Proc]]:
    good = start_sim("dash-good", "--models", MODEL, "--latency", "0.02")
    flaky = start_sim("dash-flaky", "--models", MODEL, "--latency", "0.05",
                      "--error-rate", "0.5", "--error-kinds", "500")  # fmt: skip
    yield [good, flaky]
    good.stop()
    flaky.stop()


@pytest.fixture(scope="module")
def gateway(sims: list[Proc], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp("dash-gw")
    config = {
        "nodes": [node("good", sims[0], [MODEL], cost_per_1k_tokens=0.4),
                  node("flaky", sims[1], [MODEL], cost_per_1k_tokens=0.1)],
        "orchestrator": {"caching_strategy": "memory", "monitoring_interval": 1.0},
        "history": {"path": str(tmp / "history.sqlite3"), "flush_interval": 1.0},
        "monitoring": {"latency_objective": 0.04},
        "gateway": {"tenants": [
            {"name": "admin", "key_sha256": [hash_key(ADMIN_KEY)], "admin": True},
            {"name": "user", "key_sha256": [hash_key("sk-dash-user")]}]},
        "alerts": {"rules": [{"name": "TrafficFlowing", "metric": "application.requests",
                              "condition": ">", "threshold": 0, "severity": "info",
                              "summary": "requests arrive"}]},
    }  # fmt: skip
    gw = start_gateway(tmp, config)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def traffic(gateway: Proc) -> Iterator[None]:
    """Chat requests until the module ends: a third repeat a prompt (cache hits)."""
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(base_url=gateway.url, headers=USER, timeout=10) as c:
            i = 0
            while not stop.is_set():
                prompt = f"question {i % 3}" if i % 3 == 0 else f"question {i}"
                body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
                c.post("/v1/chat/completions", json=body)
                i += 1
                stop.wait(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=15)


def analytics(gateway: Proc) -> dict[str, Any]:
    r = httpx.get(f"{gateway.url}/admin/analytics", params={"since": FINDINGS_SINCE}, headers=ADMIN,
                  timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def current(gateway: Proc) -> dict[str, Any]:
    r = httpx.get(f"{gateway.url}/admin/metrics/current", headers=ADMIN, timeout=10)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


# --- the browser
def _chromium() -> tuple[str, str]:
    browser = next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None,
    )
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        why = "chromium and chromium-driver are not installed (PRSM_BROWSER=1 scripts/install.sh)"
        if IN_CI:
            pytest.fail(f"{why}; CI=true requires them")
        pytest.skip(why)
    return browser, driver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    chrome, chromedriver = _chromium()
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1440,1000", "--no-first-run", "--disable-extensions",
                f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait(fn: Any, what: str, timeout: float = 30.0, *, raises: bool = True) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            if not raises:
                return value
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


PAGE_STATE = """
const tile = id => { const t = document.getElementById(id);
  return {text: t.querySelector('.value').textContent, value: t.dataset.value}; };
const chart = id => { const c = document.getElementById(id);
  return {last: c.dataset.last ? JSON.parse(c.dataset.last) : null, time: c.dataset.lastTime,
          points: Number(c.dataset.points || 0), canvases: c.querySelectorAll('canvas').length}; };
const rows = id => [...document.querySelectorAll('#' + id + ' tbody tr')].map(
  tr => [...tr.children].map(td => td.textContent));
return {timestamp: document.body.dataset.timestamp || null,
        status: document.getElementById('status').textContent,
        rate: tile('tile-request-rate'), latency: tile('tile-latency'),
        errors: tile('tile-error-rate'), cache: tile('tile-cache-hit-rate'),
        sla: tile('tile-sla'),
        chartRate: chart('chart-rate'), chartLatency: chart('chart-latency'),
        chartRatios: chart('chart-ratios'),
        nodes: rows('nodes'), stages: rows('stages'), alerts: rows('alerts'),
        replicas: rows('replicas'),
        findings: {sentence: document.getElementById('findings-sentence').textContent,
                   when: document.getElementById('findings-when').textContent,
                   saturatesFirst: document.getElementById('findings').dataset.saturatesFirst,
                   insights: rows('insights'), recommendations: rows('recommendations')},
        resources: performance.getEntriesByType('resource').map(e => e.name)};
"""


def words(sentence: str) -> str:
    """``sentence`` with its numbers masked."""
    return re.sub(r"\d+(\.\d+)?(e[+-]?\d+)?", "#", sentence)


def test_the_page_shows_what_the_admin_api_says(
    gateway: Proc, traffic: None, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    # the first requests' stage times differ from the steady ones: the findings are compared
    # once the analysis has settled (the same words twice, a second apart)
    def settled() -> bool:
        first = words(analytics(gateway)["bottleneck"]["sentence"])
        time.sleep(1.0)
        return first == words(analytics(gateway)["bottleneck"]["sentence"])

    wait(settled, "the analysis to settle", timeout=60)
    browser.get(f"{gateway.url}/dashboard")
    # the gateway has admin keys: the page asks for one, once, and keeps it in the tab
    form = browser.find_element(By.ID, "key-form")
    wait(form.is_displayed, "the admin key form")
    browser.find_element(By.ID, "key-input").send_keys(ADMIN_KEY)
    form.submit()
    wait(lambda: browser.execute_script(PAGE_STATE)["status"] == "live", "the page to go live")
    assert browser.execute_script("return sessionStorage.getItem('prsm-admin-key')") == ADMIN_KEY

    # the page and the admin API agree on one collection (retry until both show the same one)
    def same_collection() -> tuple[dict[str, Any], dict[str, Any]] | None:
        api = current(gateway)
        page = browser.execute_script(PAGE_STATE)
        if page["timestamp"] is None or float(page["timestamp"]) != api["timestamp"]:
            return None
        if not api["application"]["request_rate"] or page["chartRate"]["points"] < 3:
            return None
        return api, page

    api, page = wait(same_collection, "the page to show the API's current collection")
    a, b = api["application"], api["business"]
    assert float(page["rate"]["value"]) == a["request_rate"] > 0
    assert page["rate"]["text"] == f"{a['request_rate']:.1f} req/s"
    assert page["latency"]["text"] == " / ".join(
        ms(a[k]) for k in ("response_time_p50", "response_time_p95", "response_time_p99")
    )
    assert page["errors"]["text"] == f"{pct(a['error_rate'])} ({a['errors']})"
    assert page["cache"]["text"] == pct(a["cache_hit_rate"])
    assert page["sla"]["text"].startswith(pct(b["sla_compliance"]))
    # the charts' newest points are this collection's figures
    assert float(page["chartRate"]["time"]) == api["timestamp"]
    assert page["chartRate"]["last"][0] == pytest.approx(a["request_rate"])
    latency = [a[f"response_time_p{p}"] * 1000 for p in (50, 95, 99)]
    assert page["chartLatency"]["last"] == pytest.approx(latency)
    ratios = [a["error_rate"] * 100, a["cache_hit_rate"] * 100, b["sla_compliance"] * 100]
    assert page["chartRatios"]["last"] == pytest.approx(ratios)
    assert all(c >= 1 for c in (page["chartRate"]["canvases"], page["chartLatency"]["canvases"]))
    # nodes with their breakers, the stages, replicas (nodes per model: no scaler here)
    nodes = {row[0]: row for row in page["nodes"]}
    assert set(nodes) == {"good", "flaky"}
    for node_id, row in nodes.items():
        assert row[2] == a["nodes"][node_id]["breaker"]
        assert row[-1] == f"{a['nodes'][node_id]['cost_per_1k_tokens']:.4f}"
    assert {"parse", "auth", "cache"} <= {row[0] for row in page["stages"]}
    assert page["replicas"] == [[MODEL, "2", "–", "0", "2"]]

    # the rule on traffic fires, and the page lists it
    def firing() -> bool:
        rows = browser.execute_script(PAGE_STATE)["alerts"]
        return any(r[0].startswith("TrafficFlowing") and r[1] == "firing" for r in rows)

    if not wait(firing, "the firing alert", raises=False):
        alerts = httpx.get(f"{gateway.url}/admin/alerts", headers=ADMIN).json()
        raise AssertionError(f"page: {browser.execute_script(PAGE_STATE)['alerts']}; {alerts}")

    # the findings panel shows what /admin/analytics says: the bottleneck sentence (its figures
    # move with each second of history, so they are compared as a shape, the words exactly)
    shown = wait(lambda: (f := browser.execute_script(PAGE_STATE)["findings"])["when"] and f,
                 "the findings panel")  # fmt: skip
    said: list[str] = []

    def agree() -> dict[str, Any] | None:
        analysis = analytics(gateway)
        said.append(analysis["bottleneck"]["sentence"])
        return analysis if words(shown["sentence"]) == words(said[-1]) else None

    analysis = wait(agree, "the API to say what the panel shows", timeout=10, raises=False)
    assert analysis, (shown["sentence"], said[-3:])
    assert said[-1].startswith("The limit: requests spend")
    assert shown["saturatesFirst"] == (analysis["bottleneck"]["saturates_first"] or "")
    assert shown["insights"] and shown["recommendations"]  # rows, or the "none" row

    # nothing was fetched from anywhere but the gateway; no script error, no CSP refusal
    assert page["resources"] and all(u.startswith(gateway.url + "/") for u in page["resources"])
    logs = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    # expected: the 401 that made the page ask for the key; the 404 that says auto-scaling is
    # off (asked again every 30 polls)
    unexpected = [
        e
        for e in logs
        if "status of 401" not in e["message"]
        and not ("/admin/scaling" in e["message"] and "status of 404" in e["message"])
    ]
    scaling_404s = [e for e in logs if "/admin/scaling" in e["message"]]
    assert len(scaling_404s) <= 2, scaling_404s
    assert not unexpected, unexpected

    # a screenshot of the whole page (the README's: after a minute of traffic)
    readme = os.environ.get("PRSM_DASHBOARD_SCREENSHOT")
    if readme:
        wait(lambda: browser.execute_script(PAGE_STATE)["chartRate"]["points"] >= 60,
             "a minute of points", timeout=120)  # fmt: skip
    for _ in range(2):  # the page grows as the window does
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1440, max(900, int(height) + 200))
        time.sleep(1.2)  # one more poll, so the charts are drawn at the new size
    out = Path(readme or tmp_path / "dashboard.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_tab_without_the_key_sees_no_figures(gateway: Proc, browser: Any) -> None:
    browser.get(f"{gateway.url}/dashboard")
    state = wait(lambda: (s := browser.execute_script(PAGE_STATE))["status"] != "connecting…"
                 and s, "the page's first poll")  # fmt: skip
    assert state["status"] == "admin key needed" and state["timestamp"] is None


# --- prsm-perf top
def test_top_prints_one_frame_with_the_current_figures(
    gateway: Proc, traffic: None, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.setenv("DASH_TEST_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("COLUMNS", "160")

    def one_frame() -> tuple[dict[str, Any], str] | None:
        before = current(gateway)
        code = main(["top", "--url", gateway.url, "--key-env", "DASH_TEST_ADMIN_KEY"])
        out = capsys.readouterr().out
        assert code == 0, out
        after = current(gateway)  # the frame showed this collection if none came in between
        if before["timestamp"] != after["timestamp"] or not after["application"]["requests"]:
            return None
        return after, out

    api, out = wait(one_frame, "a frame between two collections")
    a, b = api["application"], api["business"]
    assert f"{a['request_rate']:.1f} req/s" in out
    assert " / ".join(ms(a[k]) for k in ("response_time_p50", "response_time_p95",
                                         "response_time_p99")) in out  # fmt: skip
    assert f"{pct(a['error_rate'])} ({a['errors']})" in out
    assert f"{pct(b['sla_compliance'])} ≤ {b['sla_objective_s']} s" in out
    for node_id, m in a["nodes"].items():
        row = next(line for line in out.splitlines() if re.match(rf"│ {node_id}\s", line))
        assert m["breaker"] in row and f"{m['cost_per_1k_tokens']:.4f}" in row
    assert "nodes per model" in out and MODEL in out
    assert "\x1b[" not in out  # not a terminal: no escape codes, one frame
    assert out.count("PRSM gateway") == 1


def test_top_without_the_key_says_so(
    gateway: Proc, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.delenv("PRSM_ADMIN_KEY", raising=False)
    assert main(["top", "--url", gateway.url]) == 2
    err = capsys.readouterr().err
    assert "401" in err and "--key-env" in err and ADMIN_KEY not in err
