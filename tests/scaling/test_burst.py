"""Quantile forecasts of the next start-up window's arrivals: the table learns them from the
history, the predictive policy sizes and holds replicas for them, and the live path
(``LoadTracker`` → ``ScalingLoop``) carries them — all on the manual clock."""

from __future__ import annotations

import numpy as np
import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.errors import ConfigError
from prsm.performance.scaling import (
    BurstQuantiles,
    BurstSettings,
    InMemoryBackend,
    LoadSeries,
    PredictivePolicy,
    PredictiveScaler,
    PredictiveSettings,
    ScalingContext,
    fit_burst_quantiles,
)

SETTINGS = BurstSettings(window=180.0, short=120.0, long=600.0, min_samples=20)


def _bursty(hours: int, *, seed: int = 3) -> np.ndarray:
    """Requests per minute: quiet, and every hour a burst — 4 requests in its first
    minute, then 6 in each of the next three (the window after a busy minute is busy)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(hours * 60) < 0.02).astype(np.float64)  # a stray request now and then
    for start in range(15, hours * 60 - 4, 60):
        y[start] = 4.0
        y[start + 1 : start + 4] = 6.0
    return y


def test_the_table_gives_a_high_quantile_after_a_busy_minute_and_a_low_one_after_quiet() -> None:
    y = _bursty(48)
    table = fit_burst_quantiles(LoadSeries(0.0, 60.0, y), 0.9, SETTINGS)
    assert isinstance(table, BurstQuantiles)
    assert table.window == 180.0 and table.quantile == 0.9
    assert table.upper(0.0, 0.0) <= 1.0  # quiet: nothing much follows
    assert table.upper(4.0, 4.0) == 18.0  # the burst's first minute: 3 × 6 follow
    # conformal-style: on the history it was fitted on, the windows above the quantile are
    # at most 10 % in every cell (here, overall)
    c = np.concatenate(([0.0], np.cumsum(y)))
    origins = np.arange(10, len(y) - 2)
    future = c[origins + 3] - c[origins]
    upper = [table.upper(c[o] - c[o - 2], c[o] - c[o - 10]) for o in origins]
    assert np.mean(future > np.array(upper)) <= 0.1
    # from a history: the counts of its last short and long spans
    burst_now = LoadSeries(0.0, 60.0, np.concatenate([np.zeros(20), [0.0, 4.0]]))
    assert table.recent(burst_now) == (4.0, 4.0)
    assert table.forecast(burst_now) == 18.0


def test_sparse_cells_fall_back_to_the_short_span_then_to_all() -> None:
    y = _bursty(48)
    table = fit_burst_quantiles(LoadSeries(0.0, 60.0, y), 0.9, SETTINGS)
    # 64+ requests in the last minutes never happened: the pooled quantile answers
    assert np.isnan(table.by_short[SETTINGS.bins - 1])
    assert table.upper(500.0, 500.0) == table.pooled
    # a short span seen, with a long span never seen with it: that short bin's quantile
    i = 3  # 4–7 requests
    assert np.isnan(table.cells[i, 0]) and not np.isnan(table.by_short[i])
    assert table.upper(4.0, 0.0) == table.by_short[i]


def test_replicas_start_the_window_within_the_slo() -> None:
    table = fit_burst_quantiles(LoadSeries(0.0, 60.0, _bursty(48)), 0.9, SETTINGS)
    # at once (span 0), 30 s service and a 30 s SLO: each replica starts 2 in time
    assert table.replicas(18.0, 30.0, 1, 30.0) == 9
    assert table.replicas(18.0, 30.0, 2, 30.0) == 5
    assert table.replicas(0.0, 30.0, 1, 30.0) == 0
    spread = fit_burst_quantiles(
        LoadSeries(0.0, 60.0, _bursty(48)), 0.9, BurstSettings(span=90.0, min_samples=20)
    )
    assert spread.replicas(18.0, 30.0, 1, 30.0) == 4  # 1 + 120 / 30 = 5 each


def test_bad_settings_and_short_histories_are_named() -> None:
    with pytest.raises(ConfigError, match="long"):
        BurstSettings(short=600.0, long=60.0)
    with pytest.raises(ConfigError, match="bins"):
        BurstSettings(bins=1)
    with pytest.raises(ConfigError, match="span"):
        BurstSettings(span=-1.0)
    with pytest.raises(ConfigError, match="burst_quantile"):
        fit_burst_quantiles(LoadSeries(0.0, 60.0, _bursty(48)), 1.0)
    with pytest.raises(ConfigError, match="burst_quantile"):
        PredictiveSettings(burst_quantile=0.3)
    with pytest.raises(ConfigError, match="too few"):
        fit_burst_quantiles(LoadSeries(0.0, 60.0, np.ones(30)), 0.9, SETTINGS)
    table = fit_burst_quantiles(LoadSeries(0.0, 60.0, _bursty(48)), 0.9, SETTINGS)
    with pytest.raises(ConfigError, match=r"load\.step"):
        table.recent(LoadSeries(0.0, 30.0, np.ones(10)))


def _ctx(now: float, replicas: int, history: np.ndarray, arrivals: int = 0) -> ScalingContext:
    return ScalingContext(
        now=now,
        interval=15.0,
        ready_replicas=replicas,
        target_replicas=replicas,
        service_time=30.0,
        startup_time=120.0,
        arrivals=arrivals,
        load=LoadSeries(0.0, 60.0, history),
    )


def test_the_policy_sizes_for_the_burst_and_holds_while_the_quantile_needs_it() -> None:
    hist = _bursty(48)
    settings = PredictiveSettings(burst_quantile=0.9, burst=SETTINGS, scale_down_window=0.0)
    policy = PredictivePolicy(settings)
    # a burst's first minute has just completed
    now = 60.0 * len(hist) + 1.0
    busy = np.concatenate([hist, np.zeros(20), [0.0, 4.0]])
    decision, state = policy.decide(_ctx(60.0 * len(busy) + 1.0, 1, busy), policy.initial_state())
    assert decision.details["burst_upper"] == 18.0
    assert decision.details["burst_floor"] == 9  # (0 ongoing + 18) / 2 per replica
    assert decision.target == 5  # +4 at most per step
    assert "burst p90 18" in decision.reason
    # the same table holds 9 replicas while the short span stays busy, though nothing is in
    # the system (the reactive and point targets alone would go down)
    held, state = policy.decide(_ctx(60.0 * len(busy) + 16.0, 9, busy), state)
    assert held.target == 9
    # quiet again: the quantile lets them go, one step at a time
    quiet = np.concatenate([busy, np.zeros(10)])
    down, _ = policy.decide(_ctx(60.0 * len(quiet) + 1.0, 9, quiet), state)
    assert down.details["burst_floor"] <= 1 and down.target == 8
    # fresh arrivals count before their minute completes
    fresh, _ = policy.decide(_ctx(now, 1, hist, arrivals=4), policy.initial_state())
    # (a decision's count is only used when its window lies within the short span)
    assert fresh.details["burst_upper"] == 18.0
    # without the setting the same snapshot changes nothing
    off = PredictivePolicy(PredictiveSettings(scale_down_window=0.0))
    plain, _ = off.decide(_ctx(60.0 * len(busy) + 1.0, 1, busy), off.initial_state())
    assert "burst_floor" not in plain.details


def test_too_short_a_history_gives_no_burst_floor_yet() -> None:
    policy = PredictivePolicy(PredictiveSettings(burst_quantile=0.9, burst=SETTINGS))
    decision, state = policy.decide(_ctx(601.0, 1, np.ones(10)), policy.initial_state())
    assert "burst_floor" not in decision.details
    assert state.burst is None and state.burst_error is not None and "too few" in state.burst_error


async def test_the_production_loop_sizes_for_the_burst_quantile() -> None:
    """``serve``'s path: requests feed the scaler's ``LoadTracker``; its ``ScalingLoop``
    steps the predictive policy, which fits the table on the tracker's history."""
    clock = ManualClock()
    settings = PredictiveSettings(burst_quantile=0.9, burst=SETTINGS, max_replicas=20)
    scaler = PredictiveScaler(InMemoryBackend(clock=clock), settings, clock=clock)
    tracker = scaler.tracker
    hist = _bursty(24)
    for count in hist:  # a day of arrivals, minute by minute
        for _ in range(int(count)):
            tracker.arrived()
            tracker.started(0.0)
            tracker.finished(30.0)
        clock.advance(60.0)
    await scaler.loop.step()  # the loop's first window (the whole day) is behind us
    for _ in range(4):  # a burst begins: its first minute, four requests in flight
        tracker.arrived()
        tracker.started(0.0)
    clock.advance(60.0)
    step = await scaler.loop.step()
    assert step.decision.details["burst_upper"] == 18.0
    assert step.context.in_flight == 4
    assert step.decision.details["burst_floor"] == 11  # (4 in flight + 18) / 2 per replica
    assert step.decision.target == 1 + 4  # scale-up at once, at most +4 a step
    shown = scaler.loop.snapshot()["steps"][-1]  # what /admin/scaling returns
    assert shown["details"]["burst_floor"] >= 9
    await scaler.close()


def test_with_season_the_quiet_cell_knows_the_busy_hours() -> None:
    """Bursts every 20 minutes from 06:00 to 18:00, none at other hours: after a quiet
    spell a burst may begin in the busy hours, never in the others."""
    y = np.zeros(4 * 1440)
    for day in range(4):
        for start in range(day * 1440 + 6 * 60, day * 1440 + 18 * 60, 20):
            y[start] = 4.0
            y[start + 1 : start + 4] = 6.0
    seasonal = BurstSettings(short=120.0, long=600.0, min_samples=20, season=2)
    table = fit_burst_quantiles(LoadSeries(0.0, 60.0, y), 0.9, seasonal)
    assert table.level(9 * 3600.0) == 1 and table.level(20 * 3600.0) == 0
    assert table.upper(0.0, 0.0, at=9 * 3600.0 + 86400.0) >= 4.0
    assert table.upper(0.0, 0.0, at=20 * 3600.0) == 0.0
    flat = fit_burst_quantiles(LoadSeries(0.0, 60.0, y), 0.9, SETTINGS)
    assert flat.upper(0.0, 0.0, at=9 * 3600.0) == flat.upper(0.0, 0.0, at=20 * 3600.0)
    with pytest.raises(ConfigError, match="season_slot"):
        BurstSettings(season=30)


def test_hold_only_keeps_what_runs_and_asks_for_nothing_more() -> None:
    hist = np.concatenate([_bursty(48), np.zeros(20), [0.0, 4.0]])
    settings = PredictiveSettings(
        burst_quantile=0.9, burst=SETTINGS, burst_hold_only=True, scale_down_window=0.0
    )
    policy = PredictivePolicy(settings)
    now = 60.0 * len(hist) + 1.0
    up, _ = policy.decide(_ctx(now, 1, hist), policy.initial_state())
    assert up.target == 1 and up.details["burst_floor"] == 1  # not raised to 9
    held, _ = policy.decide(_ctx(now, 6, hist), policy.initial_state())
    assert held.target == 6  # the six running are kept: the quantile needs 9
    with pytest.raises(ConfigError, match="burst_hold_only"):
        PredictiveSettings(burst_hold_only=1)  # type: ignore[arg-type]
