"""Our policy: forecast provisioning ahead of the start-up time, the reactive floor, the score,
cost and step limits, stabilisation — pure, driven by hand-made snapshots."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from prsm.performance.errors import ConfigError
from prsm.performance.scaling import (
    LoadSeries,
    PredictivePolicy,
    PredictiveSettings,
    PredictorSettings,
    ScalingAction,
    ScalingContext,
    ScalingSignals,
    replicas_for,
)

DAY = 86400.0


def office_hours(days: int) -> LoadSeries:
    """Per-minute arrivals: 120 a minute (2/s) from 09:00 to 17:00, none otherwise."""
    minute = np.arange(days * 1440) % 1440
    values = np.where((minute >= 9 * 60) & (minute < 17 * 60), 120.0, 0.0)
    return LoadSeries(0.0, 60.0, values)


def ctx(now: float, **kw: Any) -> ScalingContext:
    base = {
        "ready_replicas": 1,
        "target_replicas": 1,
        "service_time": 1.0,
        "startup_time": 120.0,
        "concurrency": 1,
    }
    base.update(kw)
    return ScalingContext(now=now, **base)


def policy(**kw: Any) -> PredictivePolicy:
    defaults: dict[str, Any] = {"use_score": False, "wait_probability": 0.05}
    defaults.update(kw)
    return PredictivePolicy(PredictiveSettings(**defaults))


def test_without_history_it_serves_what_is_in_the_system() -> None:
    p = policy()
    decision, _ = p.decide(ctx(10.0, in_flight=1, queued=4), p.initial_state())
    assert decision.target == 5 and decision.action is ScalingAction.SCALE_UP
    assert "no forecast" in decision.reason and decision.details["reactive_replicas"] == 5


def test_it_provisions_ahead_of_the_morning_by_the_start_up_time() -> None:
    history = office_hours(5)
    p = policy(max_step_up=20)
    day5 = 5 * DAY
    early = day5 + 8 * 3600 + 40 * 60  # 08:40: the window it provisions for is still quiet
    decision, state = p.decide(ctx(early, load=history.window(0, early)), p.initial_state())
    assert decision.target == 1
    just_before = day5 + 8 * 3600 + 57 * 60  # 08:57 + 2 min start-up reaches 09:00
    load = LoadSeries(0.0, 60.0, np.concatenate((history.values, np.zeros(17 * 60))))
    decision, state = p.decide(ctx(just_before, load=load.window(0, just_before)), state)
    # 2 req/s × 1 s: Erlang C for P(wait > 30 s) ≤ 5 % wants a few replicas, ahead of the load
    assert decision.target >= 3
    assert decision.details["forecast"] > 1.0
    assert decision.details["predicted_replicas"] == decision.target


def test_cost_limit_caps_the_target() -> None:
    p = policy(cost_per_replica_hour=2.0, cost_limit_per_hour=10.0, max_step_up=50)
    decision, _ = p.decide(ctx(1.0, in_flight=1, queued=19), p.initial_state())
    assert decision.target == 5 and decision.details["expected_cost_per_hour"] == 10.0


def test_step_limits_bound_each_decision() -> None:
    p = policy(max_step_up=2, max_step_up_percent=0.0, max_step_down=1, scale_down_window=0.0)
    decision, state = p.decide(ctx(1.0, in_flight=1, queued=9), p.initial_state())
    assert decision.target == 3  # 1 + 2
    decision, state = p.decide(ctx(16.0, ready_replicas=6, target_replicas=6), state)
    assert decision.target == 5  # one at a time down


def test_scale_down_waits_for_its_window() -> None:
    p = policy(scale_down_window=60.0, max_step_down=10)
    _, state = p.decide(
        ctx(0.0, in_flight=4, ready_replicas=4, target_replicas=4), p.initial_state()
    )
    quiet = ctx(30.0, ready_replicas=4, target_replicas=4)
    decision, state = p.decide(quiet, state)
    assert decision.target == 4 and decision.action is ScalingAction.MAINTAIN
    decision, state = p.decide(replace(quiet, now=61.0), state)
    assert decision.target == 1


def test_the_score_adds_a_replica_when_the_signals_are_hot() -> None:
    p = policy(use_score=True)
    hot = ScalingSignals(cpu=1.0, memory=0.9, latency=60.0, queue_depth=10.0, error_rate=0.05)
    decision, _ = p.decide(ctx(1.0, in_flight=1, signals=hot), p.initial_state())
    assert decision.target == 2 and decision.details["score_action"] == "scale_up"
    cold = ScalingSignals(cpu=0.0, memory=0.1, latency=0.0, queue_depth=0.0, error_rate=0.0)
    decision, _ = p.decide(
        ctx(1.0, ready_replicas=3, target_replicas=3, signals=cold), p.initial_state()
    )
    assert decision.details["score_action"] == "scale_down"


def test_min_replicas_holds() -> None:
    p = policy(min_replicas=2, max_replicas=4)
    decision, _ = p.decide(ctx(1.0, ready_replicas=2, target_replicas=2), p.initial_state())
    assert decision.target == 2


def test_refit_happens_on_its_schedule() -> None:
    history = office_hours(5)
    p = policy(predictor=PredictorSettings(refit_interval=3600.0))
    now = 4 * DAY + 3600.0
    _, state = p.decide(ctx(now, load=history.window(0, now)), p.initial_state())
    first = state.fitted
    _, state = p.decide(ctx(now + 600, load=history.window(0, now + 600)), state)
    assert state.fitted is first  # ten minutes later: the same fit, states moved on
    _, state = p.decide(ctx(now + 4000, load=history.window(0, now + 4000)), state)
    assert state.fitted is not first


def test_erlang_sizing() -> None:
    # 1 req/s of 1 s requests: 1 busy replica on average; P(wait > 30 s) ≤ 5 % needs 2
    assert replicas_for(1.0, 1.0, 1, wait=30.0, probability=0.05, max_replicas=20) == 2
    assert replicas_for(10.0, 1.0, 1, wait=0.5, probability=0.01, max_replicas=20) > 10
    assert replicas_for(0.0, 1.0, 1, wait=1.0, probability=0.01, max_replicas=20) == 0
    assert replicas_for(100.0, 1.0, 1, wait=1.0, probability=0.01, max_replicas=20) == 20


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"wait_probability": 0.0}, "wait_probability"),
        ({"cost_per_replica_hour": 5.0, "cost_limit_per_hour": 1.0}, "cost_limit_per_hour"),
        ({"max_step_down": 0}, "max_step_down"),
        ({"min_replicas": 3, "max_replicas": 2}, "min_replicas"),
        ({"reactive_utilization": 1.5}, "reactive_utilization"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        PredictiveSettings(**kwargs)
    assert err.value.field == field


def _forecasts(settings: PredictiveSettings, decisions: range, width: int) -> list[Any]:
    """The upper forecast of a decision a minute over ``decisions`` (minutes), each reading
    at most ``width`` minutes of a noisy hourly sine (the history a tracker's ring holds)."""
    policy = PredictivePolicy(settings)
    minutes = np.arange(decisions.stop + 40)
    rng = np.random.default_rng(0)
    wave = 30 + 20 * np.sin(minutes * 2 * np.pi / 60)
    counts = (wave + rng.poisson(3, len(minutes))).astype(float)
    state, out = policy.initial_state(), []
    for m in decisions:
        lo = max(0, m - width)
        ctx = ScalingContext(now=m * 60.0 + 1, ready_replicas=2, starting_replicas=0,
                             target_replicas=2, in_flight=0, queued=0, mean_ongoing=0.0,
                             mean_busy=0.0, interval=60.0, arrivals=0, concurrency=1,
                             service_time=4.0, startup_time=45.0,
                             load=LoadSeries(lo * 60.0, 60.0, counts[lo:m]))  # fmt: skip
        decision, state = policy.decide(ctx, state)
        out.append(decision.details["forecast_upper"])
    return out


def test_a_sliding_history_moves_the_models_on_as_a_growing_one_does() -> None:
    """Once the tracker's ring is full the history the policy reads is a sliding window of
    constant length: between refits each new step must still move the models on (a forecast
    per step), as with the growing history the simulator hands it."""
    settings = PredictiveSettings(
        min_replicas=1, max_replicas=20, interval=15.0,
        predictor=PredictorSettings(step=60.0, horizon=600.0, season=3600.0,
                                    min_validation=3600.0, refit_interval=3600.0),
    )  # fmt: skip
    decisions = range(600, 640)  # a decision a minute, within one refit interval
    sliding = _forecasts(settings, decisions, 600)
    assert len(set(sliding)) == 40 and sliding == _forecasts(settings, decisions, 10**6)


def test_a_sliding_minute_history_moves_a_five_minute_predictor_on() -> None:
    """The defaults: a 60 s ring read by a 300 s predictor. The ring's start moves a minute
    a decision, so the history is aligned to the predictor's grid before its steps are
    counted: each completed 300 s step moves the models on once, as a growing history does
    (not an empty update that froze the forecast, nor a bucket fed twice)."""
    settings = PredictiveSettings(
        min_replicas=1, max_replicas=20, interval=60.0,
        predictor=PredictorSettings(step=300.0, horizon=1800.0, season=3600.0,
                                    min_validation=3 * 3600.0, refit_interval=6 * 3600.0),
    )  # fmt: skip
    decisions = range(1200, 1260)  # a decision a minute, within one refit interval
    sliding = _forecasts(settings, decisions, 1200)
    assert len(set(sliding)) >= 12 and sliding == _forecasts(settings, decisions, 10**6)
