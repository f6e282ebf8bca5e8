"""``session_error_quantile``: the session forecast's own errors, settled once each window has
passed, size a headroom added to the next forecasts (on a manual clock)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.config import load_config
from prsm.performance.errors import ConfigError
from prsm.performance.scaling import (
    PredictivePolicy,
    PredictiveSettings,
    ScalingContext,
    SessionSnapshot,
)
from prsm.performance.scaling._headroom import ForecastErrors
from prsm.performance.scaling._replay import StepRecord, errors_exact_from, prime

WINDOW = (90.0, 210.0)
SPAN = WINDOW[1] - WINDOW[0]


def test_a_forecast_settles_once_its_window_has_passed() -> None:
    errors = ForecastErrors().forecast(100.0, 220.0, 2.0)
    for now, n in ((100.0, 5), (150.0, 1), (200.0, 2)):  # 5 arrived before the window
        errors = errors.observe(now, n, 3600.0)
        assert errors.errors == () and len(errors.pending) == 1
    errors = errors.observe(220.0, 4, 3600.0)  # (100, 220]: 1 + 2 + 4 arrived
    assert errors.errors == ((220.0, 5.0),) and errors.pending == ()
    assert errors.arrivals == ()  # no pending window holds them any more
    assert errors.headroom(0.9) == pytest.approx(5.0)
    # an error is forgotten ``span`` seconds after it settled; none: no headroom
    assert errors.observe(3820.0, 0, 3600.0).errors == ()
    assert ForecastErrors().headroom(0.5) == 0.0


def test_the_headroom_is_the_quantile_of_the_errors_never_below_zero() -> None:
    errors = ForecastErrors()
    for k, arrived in enumerate([0, 0, 0, 1, 2, 3, 4, 5, 6, 9]):
        errors = errors.forecast(10.0 * k, 10.0 * k + 5.0, 3.0)
        errors = errors.observe(10.0 * k + 5.0, arrived, 3600.0)
    got = [e for _, e in errors.errors]
    assert got == [-3.0, -3.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 6.0]
    assert errors.headroom(0.9) == pytest.approx(float(np.quantile(got, 0.9)))
    assert errors.headroom(0.5) == 0.0  # the median error is -0.5: no negative headroom


def _snapshot(open_sessions: int) -> SessionSnapshot:
    table = np.full((4, 121), 1.0)  # each open session brings one request in the window
    return SessionSnapshot(
        tuple((5.0, 1) for _ in range(open_sessions)), 0, 3600.0, WINDOW, 15.0, table, 10
    )


def _run(quantile: float | None, arrivals_per_decision: int) -> list[Mapping[str, Any]]:
    """Two open sessions throughout; ``arrivals_per_decision`` requests every 10 s."""
    settings = PredictiveSettings(
        interval=10.0,
        session_wait_probability=0.05,
        session_error_quantile=quantile,
        scale_down_window=0.0,
    )
    policy = PredictivePolicy(settings)
    state = policy.initial_state()
    clock = ManualClock(1000.0)
    out = []
    for _ in range(60):
        ctx = ScalingContext(
            now=clock.monotonic(),
            ready_replicas=1,
            target_replicas=1,
            arrivals=arrivals_per_decision,
            interval=10.0,
            service_time=20.0,
            startup_time=120.0,
            sessions=_snapshot(2),
        )
        decision, state = policy.decide(ctx, state)
        out.append(decision.details)
        clock.advance(10.0)
    return out


def test_unforeseen_arrivals_raise_the_session_floor() -> None:
    plain = _run(None, 1)
    busy = _run(0.9, 1)  # 12 arrive in each window, 2 forecast
    assert "session_headroom" not in plain[-1]
    assert busy[0]["session_headroom"] == 0.0  # nothing settled yet
    assert busy[0]["session_floor"] == plain[0]["session_floor"]
    assert busy[-1]["session_headroom"] == pytest.approx(10.0)
    expected = plain[-1]["session_rate"] + 10.0 / SPAN
    assert busy[-1]["session_rate"] == pytest.approx(expected, abs=1e-5)
    assert busy[-1]["session_floor"] > plain[-1]["session_floor"]


def test_a_forecast_that_is_not_exceeded_adds_nothing() -> None:
    plain = _run(None, 0)
    calm = _run(0.9, 0)  # none arrive: every error is -2
    assert calm[-1]["session_headroom"] == 0.0
    assert [d["session_floor"] for d in calm] == [d["session_floor"] for d in plain]


def _decisions(policy: PredictivePolicy) -> tuple[list[StepRecord], list[ForecastErrors]]:
    """120 decisions of a leader, 10 s apart, reading the sessions (a request settled from the
    fourth on): their records, and the forecast's errors after each."""
    state, records, errors = policy.initial_state(), [], []
    rng = np.random.default_rng(7)
    for k in range(120):
        table = np.full((4, 121), float(rng.uniform(0.5, 2.0)))
        sessions = SessionSnapshot(((5.0, 1),) * int(rng.integers(1, 4)), 0, 3600.0, WINDOW,
                                   15.0, table, 0 if k < 3 else 10)  # fmt: skip
        ctx = ScalingContext(now=1000.0 + 10 * k, ready_replicas=1, target_replicas=1,
                             arrivals=int(rng.integers(0, 9)), interval=10.0, service_time=20.0,
                             startup_time=120.0, sessions=sessions)  # fmt: skip
        decision, state = policy.decide(ctx, state)
        records.append(StepRecord.of(ctx, decision, None))
        errors.append(state.session_errors)
    return records, errors


def test_a_replay_rebuilds_the_errors_from_the_records_before_it() -> None:
    """The records of a leader's decisions rebuild its forecast errors (:func:`prime`): exactly
    once they reach back a window and ``session_error_span`` before the last."""
    settings = PredictiveSettings(interval=10.0, session_wait_probability=0.05,
                                  session_error_quantile=0.9, session_error_span=300.0)  # fmt: skip
    policy = PredictivePolicy(settings)
    records, errors = _decisions(policy)
    state, ctx = policy.initial_state(), records[-1].context(None)
    state = dataclasses.replace(state, session_errors=errors[-1])
    assert state.session_errors.errors and state.session_errors.pending
    assert policy.replay_memory(WINDOW[1]) == policy.memory  # (6 h 20 min: more than 300 s)
    longer = PredictivePolicy(dataclasses.replace(settings, session_error_span=86400.0))
    assert longer.replay_memory(WINDOW[1]) == 86400.0 + WINDOW[1] + 20.0
    last = records[-1].now
    for first in range(0, 120, 7):
        rebuilt = prime(policy, records[first:], policy.initial_state())
        exact_from, exact = errors_exact_from(records[first:], 300.0, 10.0)
        # from the first decision at or after the window's end past the first, span later
        reach = next((r.now for r in records[first:] if r.now >= records[first].now + 210), np.inf)
        assert exact_from == max(reach, records[3].now) + 300.0 and exact == (exact_from <= last)
        assert (rebuilt.session_errors == state.session_errors) == exact, first
    assert errors_exact_from(records[:3], 300.0, 10.0) == (float("inf"), False)  # nothing settled
    plain = PredictivePolicy(dataclasses.replace(settings, session_error_quantile=None))
    assert plain.session_errors_span is None and plain.prime(state, ctx) is state


@pytest.mark.parametrize(("lost", "to"), [(40, 44), (50, 60), (80, 82), (100, 101), (118, 119)])
def test_records_with_a_gap_rebuild_the_errors_exactly_only_from_after_it(
    lost: int, to: int
) -> None:
    """Decisions missing from the records (a standby that missed answers, a leader down for a
    while): the forecasts and arrivals of the gap are not in them, so the errors are exact only
    from a window and ``session_error_span`` after the gap, as after the first record."""
    policy = PredictivePolicy(PredictiveSettings(interval=10.0, session_wait_probability=0.05,
                                                 session_error_quantile=0.9,
                                                 session_error_span=300.0))  # fmt: skip
    records, errors = _decisions(policy)
    held = records[:lost] + records[to:]
    exact_from, exact = errors_exact_from(held, 300.0, 10.0)
    assert (exact_from, exact) == errors_exact_from(records[to:], 300.0, 10.0)
    for i, r in enumerate(held):
        rebuilt = prime(policy, held[: i + 1], policy.initial_state()).session_errors
        if r.now >= exact_from:  # (claimed exact: it is the leader's)
            assert rebuilt == errors[records.index(r)], r.now


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("session_error_quantile", 1.0),
        ("session_error_quantile", 0.2),
        ("session_error_quantile", True),
        ("session_error_span", 0.0),
        ("session_error_span", -1.0),
    ],
)
def test_bad_settings_are_named(field: str, bad: Any) -> None:
    with pytest.raises(ConfigError) as err:
        PredictiveSettings(**{field: bad})
    assert err.value.field == field


def test_the_settings_from_file_and_environment(tmp_path: Any) -> None:
    path = tmp_path / "prsm.yaml"
    path.write_text("scaling:\n  session_error_quantile: 0.75\n")
    assert load_config(path, environ={}).scaling.session_error_quantile == 0.75
    env = {"PRSM_SCALING__SESSION_ERROR_SPAN": "3600"}
    assert load_config(path, environ=env).scaling.session_error_span == 3600.0
    assert load_config(environ={}).scaling.session_error_quantile is None  # off by default
    with pytest.raises(ConfigError) as err:
        load_config(environ={"PRSM_SCALING__SESSION_ERROR_QUANTILE": "2"})
    assert err.value.field == "scaling.session_error_quantile"


def test_a_record_the_leader_did_not_keep_rebuilds_the_errors_only_from_after_it() -> None:
    """A decision asked for out of turn, less than half an interval after the last: the leader
    keeps its record in place of the last one (:mod:`._loop`), whose arrivals and forecast the
    rebuild then lacks: exact only from a window and ``session_error_span`` after it."""
    policy = PredictivePolicy(PredictiveSettings(interval=10.0, session_wait_probability=0.05,
                                                 session_error_quantile=0.9,
                                                 session_error_span=900.0))  # fmt: skip
    times = [1000.0 + 10 * k for k in range(120)] + [2193.0 + 10 * k for k in range(100)]
    state, records, live, rng = policy.initial_state(), [], {}, np.random.default_rng(7)
    for k, now in enumerate(times):
        table = np.full((4, 121), float(rng.uniform(0.5, 2.0)))
        sessions = SessionSnapshot(((5.0, 1),) * int(rng.integers(1, 4)), 0, 3600.0, WINDOW,
                                   15.0, table, 0 if k < 3 else 10)  # fmt: skip
        ctx = ScalingContext(now=now, ready_replicas=1, target_replicas=1,
                             arrivals=int(rng.integers(0, 9)), service_time=20.0,
                             interval=now - times[k - 1] if k else 10.0,
                             startup_time=120.0, sessions=sessions)  # fmt: skip
        decision, state = policy.decide(ctx, state)
        live[now] = state.session_errors
        if records and now - records[-1].now < 5.0:  # (as the loop keeps them)
            records.pop()
        records.append(StepRecord.of(ctx, decision, None))
    assert len(records) == len(times) - 1
    exact_from, exact = errors_exact_from(records, 900.0, 10.0)
    assert exact_from >= 2193.0 + WINDOW[1] + 900.0 and not exact  # (3183: the last)
    for i, r in enumerate(records):
        rebuilt = prime(policy, records[: i + 1], policy.initial_state()).session_errors
        assert (rebuilt == live[r.now]) or r.now < exact_from, r.now
