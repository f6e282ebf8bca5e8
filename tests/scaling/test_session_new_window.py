"""``session_new_window``: the predictive policy counts new sessions at their rate over a
shorter span than the tracker's hour, so a cluster of sessions starting now raises the
session floor at once (the tracker's snapshot carries the sessions' start ages)."""

from __future__ import annotations

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
    SessionTracker,
)

WINDOW = (90.0, 210.0)


def _settled_tracker(clock: ManualClock) -> SessionTracker:
    """A tracker that has learned its table (one user, long ago) on the manual clock."""
    tr = SessionTracker(window=WINDOW)
    tr.arrived("old", clock.monotonic())
    clock.advance(1800.0 + WINDOW[1] + 1.0)
    tr.settle(clock.monotonic())
    assert tr.settled == 1
    return tr


def test_the_snapshot_carries_the_start_ages_newest_first() -> None:
    clock = ManualClock(0.0)
    tr = _settled_tracker(clock)
    t0 = clock.monotonic()
    for i in range(4):  # four sessions 1000 s apart, then one more user at once
        tr.arrived(f"u{i}", t0 + 1000.0 * i)
    clock.advance(3100.0)
    snap = tr.snapshot(clock.monotonic())
    assert snap.new_sessions == 4 and snap.starts == (100.0, 1100.0, 2100.0, 3100.0)
    assert snap.new_session_rate() == pytest.approx(4 / 3600.0)
    assert snap.new_session_rate(3600.0) == pytest.approx(4 / 3600.0)
    assert snap.new_session_rate(1000.0) == pytest.approx(1 / 1000.0)  # only u3's
    assert snap.new_session_rate(1101.0) == pytest.approx(2 / 1101.0)


def test_a_cluster_of_new_sessions_raises_the_floor_with_a_short_window() -> None:
    clock = ManualClock(0.0)
    tr = _settled_tracker(clock)
    clock.advance(4000.0)
    for i in range(10):  # ten users begin within five minutes
        tr.arrived(f"u{i}", clock.monotonic())
        clock.advance(30.0)
    snap = tr.snapshot(clock.monotonic())
    assert snap.new_sessions == 10

    def floor(window: float | None) -> int:
        settings = PredictiveSettings(
            session_wait_probability=0.05, session_new_window=window, scale_down_window=0.0
        )
        policy = PredictivePolicy(settings)
        ctx = ScalingContext(
            now=clock.monotonic(),
            ready_replicas=1,
            target_replicas=1,
            service_time=30.0,
            startup_time=120.0,
            sessions=snap,
        )
        decision, _ = policy.decide(ctx, policy.initial_state())
        rate = decision.details["session_rate"]
        assert rate >= snap.new_session_rate(window)
        return int(decision.details["session_floor"])

    hourly, recent = floor(None), floor(600.0)
    assert hourly == floor(3600.0)
    assert recent > hourly  # 10 sessions / 600 s, not / 3600 s


@pytest.mark.parametrize("bad", [0.0, -60.0, float("nan"), True, "10m"])
def test_a_bad_window_is_named(bad: Any) -> None:
    with pytest.raises(ConfigError) as err:
        PredictiveSettings(session_new_window=bad)
    assert err.value.field == "session_new_window"


def test_a_window_the_snapshot_cannot_answer_is_named() -> None:
    table = np.zeros((4, 121))
    snap = SessionSnapshot((), 2, 3600.0, WINDOW, 15.0, table, 1, (10.0, 20.0))
    with pytest.raises(ConfigError) as err:
        snap.new_session_rate(7200.0)  # longer than the tracker looks back
    assert err.value.field == "session_new_window"
    blind = SessionSnapshot((), 2, 3600.0, WINDOW, 15.0, table, 1)
    assert blind.new_session_rate() == pytest.approx(2 / 3600.0)
    with pytest.raises(ConfigError) as err:
        blind.new_session_rate(600.0)  # no start ages to count from
    assert err.value.field == "session_new_window"
    with pytest.raises(ConfigError) as err:
        SessionSnapshot((), 2, 3600.0, WINDOW, 15.0, table, 1, (10.0,))
    assert err.value.field == "starts"


def test_the_window_from_file_and_environment(tmp_path: Any) -> None:
    path = tmp_path / "prsm.yaml"
    path.write_text("scaling:\n  session_new_window: 900\n")
    assert load_config(path, environ={}).scaling.session_new_window == 900
    env = {"PRSM_SCALING__SESSION_NEW_WINDOW": "600"}
    assert load_config(path, environ=env).scaling.session_new_window == 600.0
    assert load_config(environ={}).scaling.session_new_window is None  # the tracker's hour
    with pytest.raises(ConfigError) as err:
        load_config(environ={"PRSM_SCALING__SESSION_NEW_WINDOW": "-5"})
    assert err.value.field == "scaling.session_new_window"


def test_a_window_longer_than_the_tracker_keeps_is_refused_when_the_scaler_is_built() -> None:
    from prsm.performance.scaling import PredictiveScaler

    with pytest.raises(ConfigError) as info:
        PredictiveScaler(settings=PredictiveSettings(session_new_window=7200.0))
    assert info.value.field == "session_new_window" and "3600" in info.value.problem
    assert PredictiveScaler(settings=PredictiveSettings(session_new_window=900.0)) is not None
