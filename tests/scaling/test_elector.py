"""The leader elector through the official ``kubernetes`` client against
:class:`FakeKubernetesAPI`'s Leases, on a manual clock: one candidate creates the Lease and
leads, the other stands by; a leader cut off from the API steps down at its renew deadline
and the standby takes over once the lease has gone unrenewed for its duration; a leader that
closes hands the Lease back and the standby takes it at its next round; the Lease double
answers as the API server does (409 on a stale ``resourceVersion`` or a second create)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.monitoring._registry import MetricsRegistry
from prsm.performance.scaling import FakeKubernetesAPI
from prsm.performance.scaling._election import LeaderElectionSettings, LeaseRecord
from prsm.performance.scaling._elector import LeaderElector
from prsm.performance.scaling._lease_store import LeaseConflict

from ..benchmarks.quick import need
from .helpers import until

S = LeaderElectionSettings(lease="scaler", url="http://x:1", lease_duration=15,
                           renew_deadline=10.0, retry_period=2.0)  # fmt: skip


def _store(api: FakeKubernetesAPI, token: str = "t") -> Any:
    from prsm.performance.scaling._kubernetes import kubernetes_api_client
    from prsm.performance.scaling._lease_store import KubernetesLeaseStore

    client = kubernetes_api_client(host=api.url, token=token)
    return KubernetesLeaseStore("scaler", "serving", client=client, timeout=5.0)


def _elector(api: FakeKubernetesAPI, name: str, clock: ManualClock, log: list[Any]) -> Any:
    async def changed(leading: bool) -> None:
        log.append((name, leading, clock.monotonic()))

    return LeaderElector(_store(api), S, name, f"http://{name}:8080", clock=clock,
                         on_change=changed, metrics=MetricsRegistry())  # fmt: skip


@pytest.fixture
def api() -> Any:
    need("kubernetes", extra="kubernetes")
    with FakeKubernetesAPI(token="t") as fake:
        yield fake


async def test_the_standby_takes_over_after_the_leader_misses_its_deadline(api: Any) -> None:
    clock, log = ManualClock(), list[Any]()
    a, b = _elector(api, "a", clock, log), _elector(api, "b", clock, log)
    await a.round()
    await b.round()
    assert a.leading and not b.leading and b.leader_url == "http://a:8080"
    lease = api.lease("scaler", "serving")
    assert lease["spec"]["holderIdentity"] == "a"
    assert lease["metadata"]["annotations"]["prsm-performance/report-url"] == "http://a:8080"
    for _ in range(3):  # renewals every retry period keep it
        clock.advance(2.0)
        await a.round()
        await b.round()
    assert a.leading and not b.leading
    assert api.lease("scaler", "serving")["spec"]["leaseTransitions"] == 0
    # a is cut off from the API from now on (its calls are refused: 401); b still reads
    a.store = _store(api, token="not-the-token")
    t0 = clock.monotonic()
    while clock.monotonic() < t0 + 30.0:
        clock.advance(a.delay() if a.leading else 0.5)
        await a.round()
        await b.round()
        if b.leading:
            break
    stepped = next(t for n, lead, t in log if n == "a" and not lead)
    took = next(t for n, lead, t in log if n == "b" and lead)
    assert stepped <= t0 + S.renew_deadline  # its last renewal was sent at t0
    assert stepped < took  # never both
    assert took <= t0 + S.lease_duration + S.retry_period
    spec = api.lease("scaler", "serving")["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    assert a.snapshot()["last_error"] is not None and b.snapshot()["leading"] is True


async def test_a_leader_that_closes_releases_the_lease(api: Any) -> None:
    clock, log = ManualClock(), list[Any]()
    a, b = _elector(api, "a", clock, log), _elector(api, "b", clock, log)
    await a.round()
    await b.round()
    await a.close()
    assert not a.leading and log[-1] == ("a", False, 0.0)
    assert api.lease("scaler", "serving")["spec"]["holderIdentity"] == ""
    clock.advance(2.0)
    await b.round()
    assert b.leading and b.snapshot()["transitions"] == 1


async def test_a_leader_whose_last_renewal_landed_unseen_still_releases(api: Any) -> None:
    clock, log = ManualClock(), list[Any]()
    a = _elector(api, "a", clock, log)
    await a.round()
    # a renewal whose answer a never folded in (its stop cancelled the round mid-call): the
    # Lease's version has moved past the one a holds
    store = _store(api)
    current = await store.get()
    assert current is not None and current.holder == "a"
    await store.replace(dataclasses.replace(current, renew_time=5.0))
    await a.close()
    spec = api.lease("scaler", "serving")["spec"]
    assert spec["holderIdentity"] == "" and spec["leaseTransitions"] == 0


async def test_a_conflict_is_counted_and_the_loser_stands_by(api: Any) -> None:
    clock, log = ManualClock(), list[Any]()
    metrics = MetricsRegistry()
    a = _elector(api, "a", clock, log)
    b = LeaderElector(_store(api), S, "b", "http://b:8080", clock=clock, metrics=metrics)
    await a.round()
    store = _store(api)
    stale = await store.get()
    assert stale is not None
    await a.round()  # a renews: the version b would write at is stale now
    with pytest.raises(LeaseConflict):
        await store.replace(LeaseRecord("b", 15, 1.0, 1.0, 1, "", stale.version))
    with pytest.raises(LeaseConflict):
        await store.create(LeaseRecord("b", 15, 1.0, 1.0, 0, ""))
    await b.round()
    assert a.leading and not b.leading
    text = metrics.exposition().decode()
    assert "prsm_scaling_leader 0.0" in text
    assert 'prsm_scaling_leader_transitions_total{to="leader"}' not in text.replace(
        'prsm_scaling_leader_transitions_total{to="leader"} 0.0', ""
    )


class _Hung:
    """A Lease store whose calls never answer once ``hang`` is set."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.hang = False

    async def _wait(self) -> None:
        if self.hang:
            await asyncio.Event().wait()

    async def get(self) -> LeaseRecord | None:
        await self._wait()
        return self.record

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        await self._wait()
        self.record = dataclasses.replace(record, version="1")
        return self.record

    async def replace(self, record: LeaseRecord) -> LeaseRecord:
        await self._wait()
        self.record = dataclasses.replace(record, version=str(int(record.version) + 1))
        return self.record


async def test_a_hung_lease_call_cannot_keep_a_leader_past_its_deadline() -> None:
    clock, log = ManualClock(), list[Any]()
    store = _Hung()

    async def changed(leading: bool) -> None:
        log.append((leading, clock.monotonic()))

    elector = LeaderElector(store, S, "a", "http://a:8080", clock=clock, on_change=changed)
    await elector.round()
    assert elector.leading
    clock.advance(2.0)
    store.hang = True
    stuck = asyncio.ensure_future(elector.round())
    await until(lambda: clock.sleepers == 1)  # waiting on the call, and on the deadline
    clock.advance(7.9)
    await until(lambda: clock.sleepers == 1)
    assert not stuck.done() and elector.state.leading
    clock.advance(0.1)  # 10 s after its last renewal was sent
    await stuck
    assert log == [(True, 0.0), (False, 10.0)] and not elector.leading
    assert elector.last_error == "the renew deadline passed during a Lease call"
