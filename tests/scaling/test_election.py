"""Leader election on a Lease: the pure decision on a manual clock (acquire, renew, lose on
a conflict, step down at the renew deadline, take over an expired or released lease), its
settings, and a random interleaving of three candidates against one Lease (reads and writes
delayed, replies lost, candidates paused and restarted) in which two never lead at once."""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import random
from typing import Any

import pytest

from prsm.performance.errors import ConfigError
from prsm.performance.scaling._election import (
    ElectionState,
    LeaderElectionSettings,
    LeaseRecord,
    Write,
    decide,
    failed,
    released,
    written,
)

S = LeaderElectionSettings(lease="scaler", url="http://a:8080", lease_duration=15,
                           renew_deadline=10.0, retry_period=2.0)  # fmt: skip


def _decide(lease: LeaseRecord | None, state: ElectionState, me: str, now: float) -> Any:
    return decide(lease, state, S, me=me, url=f"http://{me}:8080", now=now, wall=1e9 + now)


def _commit(record: LeaseRecord, version: int) -> LeaseRecord:
    return dataclasses.replace(record, version=str(version))


def test_a_candidate_creates_the_lease_and_leads_after_the_write() -> None:
    decision, state = _decide(None, ElectionState(), "a", 0.0)
    assert decision.write is Write.CREATE and decision.record is not None
    assert decision.record.holder == "a" and decision.record.url == "http://a:8080"
    assert not state.leading  # not before the write succeeds
    state = written(_commit(decision.record, 1), "a", 0.0, 0.1, state)
    assert state.leading and state.leads(9.9, S) and not state.leads(10.0, S)


def test_the_holder_renews_keeping_acquire_time_and_transitions() -> None:
    held = LeaseRecord("a", 15, 1e9, 1e9, 3, "http://a:8080", "7")
    state = ElectionState(held, 0.0, True, 0.0)
    decision, state = _decide(held, state, "a", 2.0)
    assert decision.write is Write.RENEW and decision.record is not None
    rec = decision.record
    assert (rec.acquire_time, rec.transitions, rec.version) == (1e9, 3, "7")
    assert rec.renew_time == 1e9 + 2.0
    state = written(_commit(rec, 8), "a", 2.0, 2.2, state)
    assert state.renewed_at == 2.0 and state.leads(11.9, S)  # counted from when it was sent


def test_another_holder_is_waited_for_until_its_record_is_unchanged_for_the_duration() -> None:
    held = LeaseRecord("a", 15, 1e9, 1e9, 0, "http://a:8080", "1")
    decision, state = _decide(held, ElectionState(), "b", 100.0)  # first seen at 100
    assert decision.write is Write.NONE
    decision, state = _decide(held, state, "b", 114.9)
    assert decision.write is Write.NONE
    renewed = dataclasses.replace(held, renew_time=1e9 + 10, version="2")
    decision, state = _decide(renewed, state, "b", 114.95)  # a renewal restarts the count
    assert decision.write is Write.NONE and state.observed_at == 114.95
    decision, state = _decide(renewed, state, "b", 129.95)
    assert decision.write is Write.ACQUIRE and decision.record is not None
    assert decision.record.transitions == 1 and decision.record.version == "2"
    assert decision.record.holder == "b" and decision.record.url == "http://b:8080"


def test_a_clock_far_off_on_the_holder_does_not_matter() -> None:
    # the record's times are ten hours in the future: only the local observation counts
    held = LeaseRecord("a", 15, 1e9 + 36_000, 1e9 + 36_000, 0, "", "1")
    decision, state = _decide(held, ElectionState(), "b", 0.0)
    assert decision.write is Write.NONE
    decision, _ = _decide(held, state, "b", 15.0)
    assert decision.write is Write.ACQUIRE


def test_a_leader_that_loses_a_conflict_steps_down_when_it_sees_the_new_holder() -> None:
    mine = LeaseRecord("a", 15, 1e9, 1e9, 0, "http://a:8080", "5")
    state = ElectionState(mine, 0.0, True, 0.0)
    state = failed(3.0, state, S)  # the renewal got a 409: still within its deadline
    assert state.leading
    theirs = LeaseRecord("b", 15, 1e9 + 3, 1e9 + 3, 1, "http://b:8080", "6")
    decision, state = _decide(theirs, state, "a", 4.0)
    assert not state.leading and decision.write is Write.NONE


def test_a_leader_that_cannot_renew_steps_down_at_its_deadline() -> None:
    mine = LeaseRecord("a", 15, 1e9, 1e9, 0, "http://a:8080", "5")
    state = ElectionState(mine, 0.0, True, 0.0)
    assert failed(9.99, state, S).leading
    assert not state.leads(10.0, S)  # it acts as leader no longer, even before it is told
    assert not failed(10.0, state, S).leading
    # a later renewal that succeeds (no one else wrote) makes it the leader again
    decision, state = _decide(mine, failed(10.0, state, S), "a", 11.0)
    assert decision.write is Write.RENEW and decision.record is not None
    assert written(_commit(decision.record, 6), "a", 11.0, 11.1, state).leads(11.1, S)


def test_a_released_lease_is_taken_at_once() -> None:
    mine = LeaseRecord("a", 15, 1e9, 1e9, 4, "http://a:8080", "9")
    back = _commit(released(mine, 1e9 + 5), 10)
    assert (back.holder, back.duration, back.transitions, back.url) == ("", 1, 4, "")
    decision, _ = _decide(back, ElectionState(), "b", 0.0)
    assert decision.write is Write.ACQUIRE and decision.record is not None
    assert decision.record.transitions == 5


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"lease_duration": 0}, "lease_duration"),
        ({"lease_duration": 1.5}, "lease_duration"),
        ({"renew_deadline": 15.0}, "renew_deadline"),
        ({"renew_deadline": -1.0}, "renew_deadline"),
        ({"retry_period": 9.0}, "retry_period"),
        ({"retry_period": 0.0}, "retry_period"),
        ({"url": ""}, "url"),
        ({"lease": "", "url": "http://a"}, "url"),
        ({"lease": "", "url": "", "identity": "x"}, "identity"),
    ],
)
def test_settings_name_the_bad_field(fields: dict[str, Any], field: str) -> None:
    base = {"lease": "scaler", "url": "http://a:8080"}
    with pytest.raises(ConfigError) as info:
        LeaderElectionSettings(**{**base, **fields})
    assert info.value.field == field


def test_identity_and_url_come_from_the_environment() -> None:
    s = LeaderElectionSettings(lease="scaler", url="http://${POD_IP}:8080/")
    assert s.resolve({"POD_IP": "10.0.0.7", "POD_NAME": "gw-1"}) == (
        "gw-1",
        "http://10.0.0.7:8080",
    )
    with pytest.raises(ConfigError) as info:
        s.resolve({})
    assert info.value.field == "url"
    assert S.margin == 5.0


# -- random interleavings -------------------------------------------------------------------
SIM = LeaderElectionSettings(lease="scaler", url="http://x", lease_duration=3,
                             renew_deadline=2.0, retry_period=0.5)  # fmt: skip


class _Sim:
    """Candidates run rounds against one Lease: a read is taken at one instant and delivered
    later; a write commits (or conflicts) at one instant later still, and its answer comes
    later again or is lost; candidates pause, and restart with an empty state."""

    def __init__(self, seed: int, n: int) -> None:
        self.rng = random.Random(seed)
        self.lease: LeaseRecord | None = None
        self.versions = itertools.count(1)
        self.names = [f"c{i}" for i in range(n)]
        self.states = {name: ElectionState() for name in self.names}
        self.epoch = dict.fromkeys(self.names, 0)  # a restart drops what was in flight
        self.events: list[tuple[float, int, str, int, str, Any]] = []
        self.seq = itertools.count()
        self.now = 0.0
        self.leaderships = 0
        for name in self.names:
            self.at(self.rng.uniform(0, 1), name, "read", None)

    def at(self, when: float, name: str, what: str, data: Any) -> None:
        heapq.heappush(self.events, (when, next(self.seq), name, self.epoch[name], what, data))

    def delay(self) -> float:
        return self.rng.choice([0.0, 0.01, 0.05, 0.2, 0.6, 1.5])

    def commit(self, kind: Write, record: LeaseRecord) -> LeaseRecord | None:
        if kind is Write.CREATE and self.lease is not None:
            return None
        if kind is not Write.CREATE and (self.lease is None or
                                         self.lease.version != record.version):  # fmt: skip
            return None
        self.lease = dataclasses.replace(record, version=str(next(self.versions)))
        return self.lease

    def step(self) -> None:
        when, _, name, epoch, what, data = heapq.heappop(self.events)
        self.now = when
        if epoch != self.epoch[name]:
            return
        state = self.states[name]
        if what == "read":
            if self.rng.random() < 0.03:  # paused for a while, or restarted
                pause = self.rng.uniform(0, 5)
                if self.rng.random() < 0.5:
                    self.epoch[name] += 1
                    self.states[name] = ElectionState()
                self.at(when + pause, name, "read", None)
                return
            self.at(when + self.delay(), name, "decide", self.lease)
        elif what == "decide":
            decision, state = decide(data, state, SIM, me=name, url=f"http://{name}",
                                     now=when, wall=when)  # fmt: skip
            self.states[name] = state
            if decision.write is Write.NONE:
                self.at(when + SIM.retry_period, name, "read", None)
            else:
                self.at(when + self.delay(), name, "commit", (decision, when))
        elif what == "commit":
            decision, sent = data
            result = self.commit(decision.write, decision.record)
            lost = self.rng.random() < 0.1
            self.at(when + self.delay(), name, "answer", (None if lost else result, sent))
        else:
            result, sent = data
            was = state.leading
            if result is None:
                self.states[name] = failed(when, state, SIM)
            else:
                self.states[name] = written(result, name, sent, when, state)
            self.leaderships += int(self.states[name].leads(when, SIM) and not was)
            self.at(when + SIM.retry_period, name, "read", None)
        leaders = [n for n in self.names if self.states[n].leads(self.now, SIM)]
        assert len(leaders) <= 1, (self.now, leaders)


@pytest.mark.parametrize("seed", range(40))
def test_two_candidates_never_lead_at_once(seed: int) -> None:
    sim = _Sim(seed, 2 + seed % 2)
    while sim.now < 300.0:
        sim.step()
    assert sim.leaderships >= 1  # and someone did lead
