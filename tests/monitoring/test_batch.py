"""Batched histogram observations: every reader sees every recorded request at once, the
cap bounds what waits, the buckets are exactly a one-at-a-time ``bisect``'s, and recording
and reading from several threads loses or doubles nothing."""

from __future__ import annotations

import logging
import math
import random
import threading
from bisect import bisect_left
from typing import Any

import orjson
import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.monitoring import MetricsRegistry, PlainFamily, RequestRecorder
from prsm.performance.monitoring._admin import monitoring_route
from prsm.performance.monitoring._batch import Batch
from prsm.performance.monitoring._deltas import FamilyDeltas

from .conftest import make_monitor

DURATION = {"operation": "chat", "model": "m", "outcome": "ok", "error_type": ""}


def test_buckets_are_exactly_bisect_lefts_for_any_value() -> None:
    rng = random.Random(7)
    for _ in range(40):
        reg = MetricsRegistry()
        families = []
        for i in range(rng.randint(1, 4)):
            bounds = sorted({round(rng.uniform(-5, 5), rng.choice((0, 1, 3))) for _ in range(6)})
            families.append(reg.plain("histogram", f"h{i}", "H.", ["x"], bounds=bounds))
        want: dict[tuple[str, str], list[int]] = {}
        sums: dict[tuple[str, str], float] = {}
        for _ in range(rng.randint(0, 2000)):
            family = rng.choice(families)
            label = rng.choice("abc")
            value = rng.choice([rng.uniform(-6, 6), rng.choice(family.bounds), rng.randint(-6, 6),
                                math.inf, -math.inf, 0.0])  # fmt: skip
            family.labels(label).observe(value)
            key = (family.name, label)
            counts = want.setdefault(key, [0] * (len(family.bounds) + 1))
            counts[bisect_left(family.bounds, value)] += 1
            sums[key] = sums.get(key, 0.0) + value
            if rng.random() < 0.01:
                reg.flush()
        for family in families:
            for (label,), child in family.children.items():
                assert child.counts == want[(family.name, label)]
                assert child.sum == pytest.approx(sums[(family.name, label)], nan_ok=True)


def test_nan_goes_where_bisect_puts_it_and_a_non_number_is_logged_and_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hist = MetricsRegistry().plain("histogram", "h", "H.", bounds=(1.0, 2.0)).labels()
    hist.observe(math.nan)
    hist.observe(1.5)
    assert hist.counts == [1, 1, 0]  # bisect_left(bounds, nan) == 0
    assert math.isnan(hist.sum)
    hist.observe("slow")  # type: ignore[arg-type]
    hist.observe(3)
    with caplog.at_level(logging.ERROR):
        assert hist.counts == [1, 1, 1]
    assert "prsm_h[] observed 'slow', not a number" in caplog.text


def test_every_reader_sees_what_was_recorded_before_it_read(clock: ManualClock) -> None:
    monitor = make_monitor(clock, objective=0.1)
    monitor.metrics_collector.start(clock.monotonic())
    r = monitor.recorder
    reg = r.registry
    family = reg.plain("histogram", "extra_seconds", "Extra.", ["k"])
    before = FamilyDeltas(r.duration)
    before.histograms()
    for _ in range(3):
        r.request("chat", "m", "t", "n1", "ok", "", 0.05, 0.04, 10, 20, "miss", 1e-6, 1e-6)
    r.gateway_stages(1e-4, 1e-6, 1e-5)
    family.labels("a").observe(0.5)
    assert len(reg.batch) > 0  # waiting: nothing has read yet
    # the exposition, our names and the OpenTelemetry views
    get = reg.registry.get_sample_value
    assert get("prsm_request_duration_seconds_bucket", {**DURATION, "le": "0.1"}) == 3.0
    assert get("prsm_extra_seconds_count", {"k": "a"}) == 1.0
    assert len(reg.batch) == 0
    r.request("chat", "m", "t", "n1", "ok", "", 0.5, 0.45, 10, 20, "miss")
    genai = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai",
             "gen_ai_request_model": "m", "error_type": ""}  # fmt: skip
    assert get("gen_ai_server_request_duration_seconds_count", genai) == 4.0
    r.request("chat", "m", "t", "n1", "ok", "", 0.05, 0.04, 10, 20, "miss")
    assert b'prsm_request_duration_seconds_count{error_type="",model="m",operation="chat",' \
        b'outcome="ok"} 5.0' in reg.exposition()  # fmt: skip
    # the deltas the monitor's history and rules come from, and a child read directly
    r.request("chat", "m", "t", "n1", "ok", "", 0.05, 0.04, 10, 20, "miss")
    assert before.histograms()[("chat", "m", "ok", "")].count == 6
    r.request("chat", "m", "t", "n1", "ok", "", 0.05, 0.04, 10, 20, "miss")
    assert r.duration.labels("chat", "m", "ok", "").count == 7
    assert r.stage_family.labels("parse").counts[1] == 1  # 1e-4: le="0.0001"
    assert r.stage_family.labels("upstream").sum == pytest.approx(7 * 0.04 + 0.45 - 0.04)


async def test_the_monitor_and_its_admin_routes_see_every_request(
    clock: ManualClock,
) -> None:
    monitor = make_monitor(clock, objective=0.1)
    monitor.metrics_collector.start(clock.monotonic())
    r = monitor.recorder
    for _ in range(4):
        r.request("chat", "m", "t", "n1", "ok", "", 0.05, 0.04, 10, 20, "miss")
    r.request("chat", "m", "t", "n1", "ok", "", 0.5, 0.4, 10, 20, "miss")
    clock.advance(1.0)
    status, body = await monitoring_route(monitor, "GET", "/admin/metrics/current", b"") or (0, b"")
    business = orjson.loads(body)["business"]
    assert status == 200
    assert business["sla_compliance"] == 0.8  # le="0.1" counted 4 of 5
    assert business["sla_violations"] == 1
    await monitor.close()


def test_the_cap_adds_up_on_its_own_and_bounds_what_waits() -> None:
    reg = MetricsRegistry()
    reg.batch = Batch(cap=8)  # before any family: they take the registry's batch
    r = RequestRecorder(reg, label_limit=5)
    hist = r.duration.labels("chat", "m", "ok", "")
    most = 0
    for i in range(50):
        r.request("chat", "m", "t", "n1", "ok", "", 0.05, 0.04, 10, 20, "miss", 1e-6, 1e-6)
        r.gateway_stages(1e-4, 1e-6, 1e-5)
        most = max(most, len(reg.batch))
        if i == 3:  # 4 requests x 10 observations: past the cap, added up without a read
            assert sum(hist._counts) >= 1
    assert most < 8 + 10  # at most one request's observations past the cap
    assert hist.count == 50


def test_labels_past_the_limit_become_other_when_read_later() -> None:
    r = RequestRecorder(MetricsRegistry(), label_limit=2)
    for model in ("a", "b", "c", "d", "c"):
        r.request("chat", model, "t", f"n-{model}", "ok", "", 0.01, 0.01, 1, 1)
    get = r.registry.registry.get_sample_value
    other = {**DURATION, "model": "_OTHER"}
    assert get("prsm_request_duration_seconds_count", other) == 3.0
    assert get("prsm_request_duration_seconds_count", {**DURATION, "model": "a"}) == 1.0
    assert get("prsm_tokens_count", {"operation": "chat", "model": "_OTHER", "node": "_OTHER",
                                     "type": "input"}) == 3.0  # fmt: skip
    assert len(r.duration.children) == 3


def test_a_removed_childs_slot_serves_a_new_child_without_mixing_them() -> None:
    reg = MetricsRegistry()
    family = reg.plain("histogram", "node_seconds", "Per node.", ["node"], bounds=(1.0,))
    old = family.labels("a")
    slot = old.slot
    old.observe(0.5)
    family.remove("a")  # what it had pending was added up first
    assert old.counts == [1, 0]
    new = family.labels("b")
    assert new.slot == slot  # the freed slot, taken again
    old.observe(0.5)  # an attempt still holding the removed node's child
    new.observe(2.0)
    assert new.counts == [0, 1]
    assert old.counts == [1, 0]  # dropped: no reader could see it
    for i in range(1000):  # nodes come and go: the slots in use stay bounded
        family.labels(f"n{i}").observe(0.5)
        family.remove(f"n{i}")
    assert len(reg.batch._targets) == 3  # dropped, b, and one reused by every n{i}


def test_recording_and_reading_from_several_threads_loses_nothing() -> None:
    reg = MetricsRegistry()
    reg.batch = Batch(cap=64)
    family = reg.plain("histogram", "t_seconds", "T.", ["w"], bounds=(0.5,))
    children = [family.labels(str(i)) for i in range(3)]
    stop = threading.Event()

    def record(child: Any) -> None:
        for i in range(20_000):
            child.observe(0.25 if i % 2 else 0.75)

    def read() -> None:
        while not stop.is_set():
            reg.exposition()

    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=record, args=(c,)) for c in children]
    reader.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    for child in children:
        assert child.counts == [10_000, 10_000]
        assert child.sum == pytest.approx(10_000 * 1.0)


def test_a_family_made_alone_has_its_own_batch() -> None:
    family = PlainFamily("histogram", "alone_seconds", "Alone.", (), (1.0,))
    family.observe(0.5)
    assert family.labels().counts == [1, 0]
    with pytest.raises(ValueError, match="cap"):
        Batch(cap=0)
