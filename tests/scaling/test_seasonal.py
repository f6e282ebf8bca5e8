"""The seasonal burst floor: the largest burst this time of day brought on past days, found in
the arrival history and provisioned a start-up time ahead by the predictive policy; off by
default, validated naming the field; the live path carries it (manual clock)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.config import load_config
from prsm.performance.errors import ConfigError
from prsm.performance.scaling import (
    InMemoryBackend,
    LoadSeries,
    PredictivePolicy,
    PredictiveScaler,
    PredictiveSettings,
    ScalingContext,
    SeasonalSettings,
    seasonal_burst,
    seasonal_replicas,
)

DAY = 1440  # minutes


def _days(n: int, bursts: dict[int, list[int]]) -> np.ndarray:
    """``n`` days of requests per minute, quiet but for ``bursts[day]``: that day, at minute
    600 of the day, a burst of that many requests in each of two minutes."""
    y = np.zeros(n * DAY)
    for day, (a, b) in bursts.items():
        y[day * DAY + 600], y[day * DAY + 601] = a, b
    return y


def test_each_days_peak_around_the_time_of_day_and_the_rank_among_the_days() -> None:
    y = _days(4, {0: [3, 4], 1: [5, 5], 2: [1, 1]})
    load = LoadSeries(0.0, 60.0, y)
    at = 3 * 86400.0 + 600 * 60.0  # day 3, minute 600: days 2, 1, 0 are looked at
    s = SeasonalSettings(days=3, rank=1, burst=120.0, width=1800.0)
    assert seasonal_burst(load, at, s) == 10.0  # day 1's 5 + 5
    assert seasonal_burst(load, at, SeasonalSettings(days=3, rank=2)) == 7.0  # day 0's
    assert seasonal_burst(load, at, SeasonalSettings(days=3, rank=3)) == 2.0  # day 2's
    assert seasonal_burst(load, at, SeasonalSettings(days=1)) == 2.0  # yesterday only
    # 1-minute bursts: the larger minute
    assert seasonal_burst(load, at, SeasonalSettings(days=3, burst=60.0)) == 5.0
    # 20 minutes later the bursts are outside ±15 minutes; 10 minutes later inside
    assert seasonal_burst(load, at + 1200.0, s) == 0.0
    assert seasonal_burst(load, at + 600.0, s) == 10.0
    # a day the history does not reach does not count; none at all: no answer
    assert seasonal_burst(load, at, SeasonalSettings(days=7, rank=3)) == 2.0
    assert seasonal_burst(load, at, SeasonalSettings(days=7, rank=7)) == 2.0
    assert seasonal_burst(LoadSeries(0.0, 60.0, y[:DAY]), 600 * 60.0, s) is None
    # the history's own time base: the same series started a day later is a day later
    later = LoadSeries(86400.0, 60.0, y)
    assert seasonal_burst(later, at + 86400.0, s) == 10.0


def test_replicas_start_the_burst_and_the_requests_now_within_the_slo() -> None:
    # 30 s service, SLO 30 s, the burst over 120 s: each replica starts 1 + 150 / 30 = 6
    assert seasonal_replicas(0, 10.0, 30.0, 1, slo=30.0, span=120.0) == 2
    assert seasonal_replicas(2, 10.0, 30.0, 1, slo=30.0, span=120.0) == 2
    assert seasonal_replicas(3, 10.0, 30.0, 1, slo=30.0, span=120.0) == 3
    assert seasonal_replicas(0, 10.0, 30.0, 1, slo=30.0, span=0.0) == 5  # at once: 2 each
    assert seasonal_replicas(0, 10.0, 30.0, 2, slo=30.0, span=0.0) == 3
    assert seasonal_replicas(0, 0.0, 30.0, 1, slo=30.0, span=120.0) == 0


def test_bad_settings_are_named() -> None:
    for kwargs, name in (
        ({"days": 0}, "days"),
        ({"rank": 0}, "rank"),
        ({"days": 2, "rank": 3}, "rank"),
        ({"burst": 0.0}, "burst"),
        ({"width": -1.0}, "width"),
        ({"width": 86400.0}, "width"),
        ({"span": -1.0}, "span"),
    ):
        with pytest.raises(ConfigError) as err:
            SeasonalSettings(**kwargs)  # type: ignore[arg-type]
        assert err.value.field == name
    for share in (0.0, -1.0, 5.0, True):
        with pytest.raises(ConfigError) as err:
            PredictiveSettings(seasonal_share=share)
        assert err.value.field == "seasonal_share"


def _ctx(now: float, replicas: int, history: np.ndarray, in_flight: int = 0) -> ScalingContext:
    return ScalingContext(
        now=now,
        interval=15.0,
        ready_replicas=replicas,
        target_replicas=replicas,
        in_flight=in_flight,
        service_time=30.0,
        startup_time=120.0,
        load=LoadSeries(0.0, 60.0, history),
    )


def test_the_policy_provisions_a_startup_ahead_of_yesterdays_burst() -> None:
    y = _days(3, {0: [8, 8], 1: [10, 10]})[: 2 * DAY + 590]  # day 2, minute 590
    now = 60.0 * len(y)
    settings = PredictiveSettings(
        seasonal_share=1.0, seasonal=SeasonalSettings(days=2), scale_down_window=0.0
    )
    policy = PredictivePolicy(settings)
    decision, _ = policy.decide(_ctx(now, 1, y), policy.initial_state())
    assert decision.details["seasonal_burst"] == 20.0
    assert decision.details["seasonal_floor"] == 4  # 20 / 6 per replica
    assert decision.target == 4 and "seasonal burst 20 req → 4" in decision.reason
    # the requests in the system now count on top; a share scales the burst
    busy, _ = policy.decide(_ctx(now, 4, y, in_flight=4), policy.initial_state())
    assert busy.details["seasonal_floor"] == 4  # (4 + 20) / 6
    half = PredictivePolicy(PredictiveSettings(seasonal_share=0.5, scale_down_window=0.0))
    small, _ = half.decide(_ctx(now, 1, y), half.initial_state())
    assert small.details["seasonal_floor"] == 2  # 10 / 6
    # hours later the time of day has been quiet on every past day: no floor
    quiet = _days(3, {0: [8, 8], 1: [10, 10]})[: 2 * DAY + 900]
    later, _ = policy.decide(_ctx(60.0 * len(quiet), 4, quiet), policy.initial_state())
    assert later.details["seasonal_burst"] == 0.0 and later.target == 3  # one step down
    # off by default: the same snapshot, no floor
    off = PredictivePolicy(PredictiveSettings(scale_down_window=0.0))
    plain, _ = off.decide(_ctx(now, 1, y), off.initial_state())
    assert "seasonal_floor" not in plain.details and plain.target == 1


def test_hold_only_keeps_what_runs_in_the_bursty_hours_and_asks_for_nothing_more() -> None:
    y = _days(3, {0: [8, 8], 1: [10, 10]})[: 2 * DAY + 590]
    now = 60.0 * len(y)
    settings = PredictiveSettings(
        seasonal_share=1.0,
        seasonal=SeasonalSettings(days=2),
        seasonal_hold_only=True,
        scale_down_window=0.0,
    )
    policy = PredictivePolicy(settings)
    up, _ = policy.decide(_ctx(now, 1, y), policy.initial_state())
    assert up.details["seasonal_floor"] == 1 and up.target == 1  # not scaled up for it
    held, _ = policy.decide(_ctx(now, 3, y), policy.initial_state())
    assert held.details["seasonal_floor"] == 3 and held.target == 3  # 3 kept (floor 4)
    plain = PredictivePolicy(PredictiveSettings(scale_down_window=0.0))
    down, _ = plain.decide(_ctx(now, 3, y), plain.initial_state())
    assert down.target == 2  # without it: one step down
    with pytest.raises(ConfigError) as err:
        PredictiveSettings(seasonal_hold_only=1)  # type: ignore[arg-type]
    assert err.value.field == "seasonal_hold_only"


def test_from_file_and_environment_off_by_default(tmp_path: Path) -> None:
    path = tmp_path / "prsm.yaml"
    path.write_text("scaling:\n  seasonal_share: 0.5\n  seasonal:\n    days: 3\n")
    cfg = load_config(path, environ={"PRSM_SCALING__SEASONAL__RANK": "2"})
    assert cfg.scaling.seasonal_share == 0.5
    assert cfg.scaling.seasonal.days == 3 and cfg.scaling.seasonal.rank == 2
    assert load_config(environ={}).scaling.seasonal_share is None
    with pytest.raises(ConfigError) as err:
        load_config(environ={"PRSM_SCALING__SEASONAL__RANK": "0"})
    assert err.value.field == "scaling.seasonal.rank"


async def test_the_live_loop_carries_the_floor_on_the_manual_clock() -> None:
    """``serve``'s path: requests feed the scaler's ``LoadTracker``; its ``ScalingLoop``
    steps the predictive policy, which finds yesterday's burst in the tracker's history."""
    clock = ManualClock()
    settings = PredictiveSettings(seasonal_share=1.0, seasonal=SeasonalSettings(days=2))
    scaler = PredictiveScaler(InMemoryBackend(clock=clock), settings, clock=clock)
    tracker = scaler.tracker
    for count in _days(3, {0: [8, 8], 1: [10, 10]})[: 2 * DAY + 590]:
        for _ in range(int(count)):
            tracker.arrived()
            tracker.started(0.0)
            tracker.finished(30.0)
        clock.advance(60.0)
    step = await scaler.loop.step()
    assert step.decision.details["seasonal_burst"] == 20.0
    assert step.decision.details["seasonal_floor"] == 4  # 20 / (1 + 150 / 30) per replica
    assert step.decision.target == 4
    shown = scaler.loop.snapshot()["steps"][-1]  # what /admin/scaling returns
    assert shown["details"]["seasonal_floor"] == 4
    await scaler.close()
