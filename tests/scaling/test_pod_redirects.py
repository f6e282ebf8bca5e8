"""Reports among scaler candidates, on a manual clock: a candidate that does not lead answers
503 with the leader's URL and plays nothing; the reporter sends the same report there at once
and keeps sending there; when the leader fails, the next report goes to ``url`` again; only a
redirect from ``url`` is followed (two candidates naming each other cannot bounce a report);
a candidate that knows no leader is a plain failure (back-off)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from prsm.performance.clock import ManualClock
from prsm.performance.scaling._pods import PodLoadReceiver, ScalingReportSettings
from prsm.performance.scaling._tracker import LoadTracker
from prsm.performance.serve._pod_report import PodLoadReporter

KEY = "admin-key-redirects-77aa"
SETTINGS = ScalingReportSettings(url="http://b:8080", key_env="K", node="vllm", interval=0.2)


class Candidates:
    """Candidate pods by host, each a real receiver whose gate says who leads."""

    def __init__(self, clock: ManualClock) -> None:
        self.leader: dict[str, str | None] = {}  # host -> what its gate answers
        self.receivers: dict[str, PodLoadReceiver] = {}
        self.down: set[str] = set()
        self.calls: list[str] = []
        for host in ("a", "b", "c"):
            receiver = PodLoadReceiver(LoadTracker(clock=clock), SETTINGS, "vllm", clock=clock)
            receiver.gate = lambda host=host: self.leader.get(host)
            self.receivers[host] = receiver

    def handle(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.calls.append(host)
        if host in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        status, body = self.receivers[host].accept(request.content)
        return httpx.Response(status, content=body)

    def lead(self, host: str) -> None:
        self.leader = {h: (None if h == host else f"http://{host}:8080") for h in "abc"}

    def played(self, host: str) -> int:
        return sum(r.events for r in self.receivers[host].reporters.values())


def _reporter(candidates: Candidates, clock: ManualClock) -> PodLoadReporter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(candidates.handle))
    return PodLoadReporter(SETTINGS, KEY, pod="gw-9", instance="gw-9/gateway/1/cd",
                           clock=clock, client=client)  # fmt: skip


async def test_reports_follow_the_leader_a_standby_names() -> None:
    clock = ManualClock()
    candidates = Candidates(clock)
    candidates.lead("a")
    reporter = _reporter(candidates, clock)
    reporter.arrived("user:x")
    assert await reporter.send_once()
    assert candidates.calls == ["b", "a"] and reporter.target == "http://a:8080"
    assert candidates.played("a") == 1 and candidates.played("b") == 0
    assert reporter.redirects == 1 and reporter.failures == 0
    reporter.started(node="vllm")
    assert await reporter.send_once()
    assert candidates.calls[-1] == "a"  # straight to the leader now
    # the leader dies; c takes over: the next report fails, the one after goes to url (b)
    candidates.down.add("a")
    candidates.lead("c")
    reporter.finished(0.1, node="vllm")
    assert not await reporter.send_once()
    assert reporter.target == "http://b:8080" and reporter.failures == 1
    assert await reporter.send_once()  # the same report (seq), via b to c
    assert candidates.calls[-2:] == ["b", "c"] and reporter.target == "http://c:8080"
    assert candidates.played("c") == 1 and reporter.retries == 1
    await reporter.aclose(flush=False)


async def test_stale_views_do_not_bounce_a_report() -> None:
    clock = ManualClock()
    candidates = Candidates(clock)
    candidates.leader = {"b": "http://a:8080", "a": "http://b:8080"}  # each names the other
    reporter = _reporter(candidates, clock)
    reporter.arrived(None)
    assert not await reporter.send_once()
    assert candidates.calls == ["b", "a"] and reporter.failures == 1
    assert reporter.target == "http://b:8080"  # back to url, after a back-off
    candidates.leader = {"b": ""}  # no leader known: a plain failure, no redirect
    assert not await reporter.send_once()
    assert candidates.calls[-1] == "b" and reporter.failures == 2 and reporter.redirects == 1
    body: Any = orjson.loads(candidates.receivers["b"].accept(b"{}")[1])
    assert body["leader"] == "" and candidates.played("b") == 0
    await reporter.aclose(flush=False)
