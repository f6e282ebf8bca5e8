"""A new leader's replay of a hostile (or broken) leader's decision records is bounded, on a
manual clock: records of another concurrency, a refit claimed at every record, a replay past
its time budget, a pending scale-up asked in the future — each refused where it is parsed
(naming the field) and, handed to a loop directly, refused there, counted and logged; the
leader's first step comes and its start-up time stays sane."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.monitoring import MetricsRegistry
from prsm.performance.scaling import PredictiveScaler, _predictive
from prsm.performance.scaling._controller import InMemoryBackend
from prsm.performance.scaling._replay import StepRecord, parse_record
from prsm.performance.scaling._sessions import SessionTracker
from prsm.performance.scaling._types import LoadSeries
from prsm.performance.scaling._warm import (
    Carried,
    HistoryError,
    history_body,
    merge,
    parse_history,
)
from prsm.performance.serve._pod_warm import WarmMirror

from .test_elector import _Hung
from .test_takeover_replay import SETTINGS
from .test_warm_standby import KEY, _candidate

WALL = 1_700_000_000.0 - 1_700_000_000.0 % 3600
HOURS = 8


def _scaler(clock: ManualClock, **loop: Any) -> tuple[PredictiveScaler, MetricsRegistry]:
    metrics = MetricsRegistry()
    scaler = PredictiveScaler(InMemoryBackend(clock=clock, initial=2), SETTINGS, clock=clock,
                              metrics=metrics)  # fmt: skip
    for name, value in loop.items():
        setattr(scaler.loop.replayer, name, value)
    return scaler, metrics


def _leader(
    **loop: Any,
) -> tuple[ManualClock, float, PredictiveScaler, MetricsRegistry, LoadSeries]:
    """A new leader HOURS into the day, its clock, its time, and the history it carried."""
    clock = ManualClock(start=HOURS * 3600.0, wall_offset=WALL)
    now = clock.time()
    scaler, metrics = _scaler(clock, **loop)
    return clock, now, scaler, metrics, _load(now)


def _load(now: float) -> LoadSeries:
    n = HOURS * 60
    minutes = np.arange(n)
    values = 20 + 10 * np.sin(minutes * 2 * np.pi / 60) + (minutes % 7)
    return LoadSeries(now // 60 * 60 - n * 60.0, 60.0, values.astype(np.float64))


def _record(now: float, load: LoadSeries, **changes: Any) -> StepRecord:
    end = now // 60 * 60
    base = StepRecord(now, 2, 0, 2, 1, 0, 1.0, 1.0, 15.0, 20, 1, 4.0, 45.0, load.start, end,
                      None, None, None, None)  # fmt: skip
    return dataclasses.replace(base, **changes)


def _refused(metrics: MetricsRegistry, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "prsm_scaling_replay_refused_records_total", {"deployment": "default", "reason": reason}
    )
    return value or 0.0


def _replays(metrics: MetricsRegistry, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "prsm_scaling_replays_total", {"deployment": "default", "outcome": outcome}
    )
    return value or 0.0


def _answer(load: LoadSeries, records: list[StepRecord]) -> dict[str, Any]:
    body = history_body(load, 0.0, 4.0, 45.0)
    return body | {"steps": [orjson.loads(orjson.dumps(r.as_dict())) for r in records]}


def _parse(body: dict[str, Any], now: float) -> Carried:
    return parse_history(body, 60.0, now=now, interval=SETTINGS.interval,
                         memory=_predictive.PredictivePolicy(SETTINGS).memory)  # fmt: skip


# -- 1: concurrency ------------------------------------------------------------------------
def test_a_record_of_a_huge_concurrency_is_refused_naming_it() -> None:
    load = _load(WALL)
    body = _record(WALL, load).as_dict() | {"concurrency": 2**40}
    with pytest.raises(ValueError, match="concurrency"):
        parse_record(body)


async def test_records_of_another_concurrency_are_refused_by_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, now, scaler, metrics, load = _leader()
    records = [_record(now - 60.0 + 15 * i, load, concurrency=8 if i == 1 else 1)
               for i in range(4)]  # fmt: skip
    caplog.set_level(logging.WARNING, "prsm.performance.scaling")
    scaler.loop.carry_over(Carried(load, 4.0, 45.0, tuple(records)), now)
    await scaler.loop.step()
    assert scaler.loop.replayed is not None and scaler.loop.replayed["held"] == 2
    assert _refused(metrics, "concurrency") == 1 and "another concurrency" in caplog.text


# -- 2: a refit storm ----------------------------------------------------------------------
def test_records_out_of_order_or_of_fits_after_their_history_are_refused_others_dropped() -> None:
    now = WALL
    load = _load(now)
    close = [_record(now - 10.0 + i * 0.001, load) for i in range(3)]
    parsed = _parse(_answer(load, close), now)  # too close: dropped, the newest kept
    assert [r.now for r in parsed.steps] == [close[-1].now] and parsed.too_close == 2
    with pytest.raises(HistoryError, match=r"steps: .*order"):
        _parse(_answer(load, close[::-1]), now)
    stale = _record(now - 3 * 86400.0, load, load_start=None, load_end=None)
    ahead = _record(now + 3600.0, load, load_end=now)
    kept = _record(now - 60.0, load)
    parsed = _parse(_answer(load, [stale, kept, ahead]), now)  # dropped alone, counted
    assert parsed.steps == (kept,) and parsed.outside == 2 and parsed.too_close == 0
    late_fit = [_record(now, load, fitted_at=now + 60.0)]
    with pytest.raises(HistoryError, match="fitted_at"):
        _parse(_answer(load, late_fit), now)
    with pytest.raises(HistoryError, match="load_end"):
        _parse(_answer(load, [_record(now, load, load_end=now + 60.0)]), now)


async def test_a_refit_claimed_at_every_record_is_honoured_once_per_refit_interval(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _, now, scaler, metrics, load = _leader()
    fits: list[float] = []
    real = _predictive.fit_predictor

    def counted(history: LoadSeries, settings: Any) -> Any:
        fits.append(history.end)
        return real(history, settings)

    monkeypatch.setattr(_predictive, "fit_predictor", counted)
    n = 280  # 70 minutes of decisions (within the replay's span), each claiming a new fit
    records = [_record(now - 15.0 * (n - i), load, fitted_at=load.start + 3600.0 + i)
               for i in range(n)]  # fmt: skip
    caplog.set_level(logging.WARNING, "prsm.performance.scaling")
    scaler.loop.carry_over(Carried(load, 4.0, 45.0, tuple(records)), now)
    await scaler.loop.step()
    # the first (the fresh state's), one refit_gap (58 min) later, and the step's own
    assert len(fits) <= 3, len(fits)
    assert _refused(metrics, "refit") == n - 1 - 2 and "without refitting" in caplog.text
    assert _replays(metrics, "ok") == 1


@pytest.mark.parametrize("held", [100, 200])  # within one chunk of decisions, over two
async def test_a_replay_over_its_budget_is_abandoned_counted_and_the_leader_steps_on(
    caplog: pytest.LogCaptureFixture, held: int
) -> None:
    """The budget is checked at each decision, not only between chunks of them."""
    _, now, scaler, metrics, load = _leader(budget=1e-9)
    records = tuple(_record(now - 15.0 * (held - i), load) for i in range(held))
    caplog.set_level(logging.WARNING, "prsm.performance.scaling")
    scaler.loop.carry_over(Carried(load, 4.0, 45.0, records), now)
    step = await scaler.loop.step()
    assert step.decision.target >= 1 and scaler.loop.replayed is None
    assert _replays(metrics, "failed") == 1 and _replays(metrics, "ok") == 0
    assert "over its budget" in caplog.text


# -- 3: a pending scale-up -----------------------------------------------------------------
def test_a_pending_scale_up_asked_after_its_record_is_refused_naming_it() -> None:
    now = WALL
    load = _load(now)
    with pytest.raises(HistoryError, match="pending_up"):
        _parse(_answer(load, [_record(now, load, pending_up=(1e12, 1))]), now)


@pytest.mark.parametrize("pending", [(-3 * 86400.0, 1), (-30.0, SETTINGS.max_replicas + 1)])
async def test_a_pending_scale_up_out_of_the_span_or_over_the_bound_is_not_restored(
    pending: tuple[float, int], caplog: pytest.LogCaptureFixture
) -> None:
    _, now, scaler, metrics, load = _leader()
    asked = (now + pending[0], pending[1])
    records = (_record(now - 15.0, load, pending_up=asked),)
    assert _parse(_answer(load, list(records)), now).steps == records  # a genuine one may be
    caplog.set_level(logging.WARNING, "prsm.performance.scaling")
    scaler.loop.carry_over(Carried(load, 4.0, 45.0, records), now)
    await scaler.loop.resume()
    assert scaler.loop._pending_up is None and _refused(metrics, "pending_up") == 1
    assert "pending scale-up" in caplog.text


async def test_a_pending_scale_up_asked_in_the_future_leaves_the_start_up_time_sane(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, now, scaler, metrics, load = _leader()
    records = (_record(now - 15.0, load, pending_up=(1e12, 1)),)
    caplog.set_level(logging.WARNING, "prsm.performance.scaling")
    scaler.loop.carry_over(Carried(load, 4.0, 45.0, records), now)
    await scaler.loop.step()
    clock.advance(15.0)
    await scaler.loop.step()
    assert 0 <= scaler.loop.startup_time <= 45.0 and _refused(metrics, "pending_up") == 1
    before = scaler.loop.startup_time
    scaler.loop._pending_up = (clock.time() + 100.0, 1)  # a scale-up "asked" ahead of now
    clock.advance(15.0)
    await scaler.loop.step()
    assert scaler.loop.startup_time == before and "start-up measured as" in caplog.text
    own = [r for r in scaler.loop.records if r.now >= now]  # its decisions (not the carried)
    served = history_body(scaler.loop.load(), 0.0, scaler.loop.service_time(),
                          scaler.loop.startup_time, own)  # fmt: skip
    served = orjson.loads(orjson.dumps(served))
    assert _parse(served, clock.time()).startup_time == before  # standbys take its answers


# -- 8: replays that cannot match ----------------------------------------------------------
def _records(now: float, load: LoadSeries, n: int, **changes: Any) -> tuple[StepRecord, ...]:
    return tuple(_record(now - 15.0 * (n - i), load, **changes) for i in range(n))


async def test_a_replayed_decision_that_differs_from_the_record_is_counted_diverged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, now, scaler, metrics, load = _leader()
    records = _records(now, load, 60)  # 15 minutes: past the policy's warm-up (10.5 min)
    records = (*records[:-1], dataclasses.replace(records[-1], decided=SETTINGS.max_replicas))
    caplog.set_level(logging.WARNING, "prsm.performance.scaling")
    scaler.loop.carry_over(Carried(load, 4.0, 45.0, records), now)
    await scaler.loop.step()
    assert _replays(metrics, "diverged") == 1 and _replays(metrics, "ok") == 0
    assert scaler.loop.replayed is not None and scaler.loop.replayed["diverged"] == 1
    assert f"it asked for {SETTINGS.max_replicas}" in caplog.text


async def test_records_that_begin_after_the_last_fit_or_sessions_make_a_replay_partial(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(start=HOURS * 3600.0, wall_offset=WALL)
    now = clock.time()
    load = _load(now)
    caplog.set_level(logging.WARNING, "prsm.performance.scaling")
    scaler, metrics = _scaler(clock)  # A's fit came before its first record carried
    scaler.loop.carry_over(Carried(load, 4.0, 45.0, _records(now, load, 8, fitted_at=now - 900)),
                           now)  # fmt: skip
    await scaler.loop.step()
    assert _replays(metrics, "partial") == 1 and _replays(metrics, "ok") == 0
    assert "after its last fit" in caplog.text
    sessions = dataclasses.replace(SETTINGS, session_wait_probability=0.2)
    metrics = MetricsRegistry()
    scaler = PredictiveScaler(InMemoryBackend(clock=clock, initial=2), sessions, clock=clock,
                              metrics=metrics)  # fmt: skip
    scaler.loop.carry_over(Carried(load, 4.0, 45.0, _records(now, load, 8)), now)  # no sessions
    await scaler.loop.step()
    assert _replays(metrics, "partial") == 1 and "last leader's were not carried" in caplog.text
    metrics = MetricsRegistry()  # an answer with the leader's sessions (none open): it matches
    scaler = PredictiveScaler(InMemoryBackend(clock=clock, initial=2), sessions, clock=clock,
                              metrics=metrics)  # fmt: skip
    held = SessionTracker().export(10, 10, 10, 10)
    scaler.loop.carry_over(Carried(load, 4.0, 45.0, _records(now, load, 8), sessions=held), now)
    await scaler.loop.step()
    assert _replays(metrics, "ok") == 1 and _replays(metrics, "partial") == 0


async def test_records_made_after_the_take_over_are_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, now, scaler, metrics, load = _leader()
    caplog.set_level(logging.WARNING, "prsm.performance.scaling")
    scaler.loop.carry_over(Carried(load, 4.0, 45.0, _records(now, load, 8)), now - 31.0)
    assert _refused(metrics, "after_takeover") == 2 and "clock ahead" in caplog.text
    assert len(scaler.loop.records) == 6
    await scaler.loop.step()  # its state lacks the old leader's last decisions: partial
    assert _replays(metrics, "partial") == 1 and "made after the take-over" in caplog.text


async def test_a_gap_in_the_records_makes_a_replay_partial(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, now, scaler, metrics, load = _leader()
    records = _records(now, load, 8)
    caplog.set_level(logging.WARNING, "prsm.performance.scaling")
    scaler.loop.carry_over(Carried(load, 4.0, 45.0, records[:3] + records[4:]), now)
    await scaler.loop.step()
    assert _replays(metrics, "partial") == 1 and "1 gap(s) in its records" in caplog.text


async def test_the_last_leaders_record_just_before_the_take_over_is_not_served_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A's last decision 3 s before B's first: B serves its records on without it, or every
    standby would refuse B's answers (records at least half an interval apart)."""
    _, now, scaler, metrics, load = _leader()
    records = tuple(_record(now - 3.0 - 15.0 * (7 - i), load) for i in range(8))
    caplog.set_level(logging.WARNING, "prsm.performance.scaling")
    scaler.loop.carry_over(Carried(load, 4.0, 45.0, records), now)
    await scaler.loop.step()
    assert [r.now for r in scaler.loop.records] == [*(r.now for r in records[:-1]), now]
    assert _refused(metrics, "too_close") == 1 and "not served on" in caplog.text
    served = history_body(scaler.loop.load(), 0.0, 4.0, 45.0, scaler.loop.records)
    assert len(_parse(orjson.loads(orjson.dumps(served)), now).steps) == 8


async def test_a_too_close_pair_a_standby_merged_is_never_served_nor_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A decided at m+5, a standby C fetched it, B took over at m+8 (popping A's): C's merge
    drops A's record (it held [..., 5, 8]); handed such a pair, a new leader drops it too
    (counted too_close), and a fresh standby takes every record of its answer."""
    clock = ManualClock(start=HOURS * 3600.0, wall_offset=WALL)
    now = clock.time()
    load = _load(now)
    m = now - 60.0
    a = tuple(_record(m + 5.0 - 15.0 * (7 - i), load) for i in range(8))
    b = (*a[:-1], _record(m + 8.0, load))
    answer = _parse(orjson.loads(orjson.dumps(history_body(load, m, 4.0, 45.0, b))), now)
    held = merge(Carried(load, 4.0, 45.0, a), answer, 8 * 3600.0, SETTINGS.interval)
    assert [r.now for r in held.steps] == [r.now for r in b] and held.too_close == 1
    scaler, metrics = _scaler(clock)
    caplog.set_level(logging.WARNING, "prsm.performance.scaling")
    scaler.loop.carry_over(Carried(load, 4.0, 45.0, (*a, b[-1])), now)  # the pair kept
    assert [r.now for r in scaler.loop.records] == [r.now for r in b]
    assert _refused(metrics, "too_close") == 1 and "half an interval" in caplog.text
    await scaler.loop.step()
    served = history_body(scaler.loop.load(), 0.0, 4.0, 45.0, scaler.loop.records)
    fresh = _parse(orjson.loads(orjson.dumps(served)), clock.time())
    assert len(fresh.steps) == 9 and fresh.too_close == 0


async def test_a_standby_counts_the_records_it_drops_by_reason() -> None:
    clock = ManualClock(start=HOURS * 3600.0, wall_offset=WALL)
    now = clock.time()
    load = _load(now)
    m = now - 60.0
    a = [_record(m + 5.0 - 15.0 * (7 - i), load) for i in range(8)]
    stale = _record(now - 3 * 86400.0, load, load_start=None, load_end=None)
    answers = [_answer(load, [stale, *a]), _answer(load, [_record(m + 8.0, load)])]
    b = _candidate("b", clock, _Hung(), InMemoryBackend(clock=clock, initial=1))
    other = _candidate("a", clock, b.store, InMemoryBackend(clock=clock, initial=1))
    await other.elector.round()
    await b.elector.round()
    client = httpx.AsyncClient(transport=httpx.MockTransport(
        lambda request: httpx.Response(200, content=orjson.dumps(answers.pop(0)))))  # fmt: skip
    metrics = MetricsRegistry()
    mirror = WarmMirror(b.elector, KEY, step=60.0, interval=5.0, timeout=1.0, clock=clock,
                        client=client, metrics=metrics, keep=8 * 3600.0,
                        decisions=SETTINGS.interval)  # fmt: skip
    assert await mirror.fetch_once() and await mirror.fetch_once() and mirror.held is not None
    assert [r.now for r in mirror.held.steps] == [*(r.now for r in a[:-1]), m + 8.0]
    assert mirror.dropped == {"too_close": 1, "outside": 1}
    for reason in ("too_close", "outside"):
        assert metrics.registry.get_sample_value(
            "prsm_scaling_warm_records_dropped_total", {"reason": reason}) == 1  # fmt: skip
    await mirror.close()
    await other.close()
