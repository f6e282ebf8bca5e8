"""``reactive_queue_share``: how many of the queued requests the predictive policy's reactive
target gives a slot of their own (every one by default), validated, from the config, and on
the live path (``LoadTracker`` → ``ScalingLoop`` → ``/admin/scaling``) on the manual clock."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.config import load_config
from prsm.performance.errors import ConfigError
from prsm.performance.scaling import (
    InMemoryBackend,
    PredictivePolicy,
    PredictiveScaler,
    PredictiveSettings,
    ScalingContext,
)


def _decide(share: float | None, *, in_flight: int, queued: int) -> Any:
    settings = PredictiveSettings(use_score=False)
    if share is not None:
        settings = replace(settings, reactive_queue_share=share)
    policy = PredictivePolicy(settings)
    ctx = ScalingContext(
        now=100.0,
        ready_replicas=in_flight,
        target_replicas=in_flight,
        in_flight=in_flight,
        queued=queued,
        service_time=30.0,
        startup_time=120.0,
    )
    decision, _ = policy.decide(ctx, policy.initial_state())
    return decision


@pytest.mark.parametrize(
    ("share", "reactive"),
    [(None, 2 + 5), (1.0, 2 + 5), (0.5, 2 + 3), (0.2, 2 + 1), (0.0, 2)],
)
def test_the_share_of_queued_requests_that_get_a_reactive_slot(
    share: float | None, reactive: int
) -> None:
    decision = _decide(share, in_flight=2, queued=5)
    assert decision.details["reactive_replicas"] == reactive
    assert decision.target == min(reactive, 2 + 4)  # scale-up at most +4 a step
    assert f"ongoing 7 → {reactive}" in decision.reason


def test_with_share_zero_the_replicas_serving_requests_are_kept() -> None:
    decision = _decide(0.0, in_flight=3, queued=0)
    assert decision.details["reactive_replicas"] == 3 and decision.target == 3


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), True, "half"])
def test_a_bad_share_is_named(bad: Any) -> None:
    with pytest.raises(ConfigError) as err:
        PredictiveSettings(reactive_queue_share=bad)
    assert err.value.field == "reactive_queue_share"


def test_the_share_from_file_and_environment(tmp_path: Any) -> None:
    path = tmp_path / "prsm.yaml"
    path.write_text("scaling:\n  reactive_queue_share: 0.5\n")
    assert load_config(path, environ={}).scaling.reactive_queue_share == 0.5
    env = {"PRSM_SCALING__REACTIVE_QUEUE_SHARE": "0"}
    assert load_config(path, environ=env).scaling.reactive_queue_share == 0.0
    assert load_config(environ={}).scaling.reactive_queue_share == 1.0  # every one by default
    with pytest.raises(ConfigError) as err:
        load_config(environ={"PRSM_SCALING__REACTIVE_QUEUE_SHARE": "2"})
    assert err.value.field == "scaling.reactive_queue_share"


async def test_the_production_loop_gives_queued_requests_their_share() -> None:
    """``serve``'s path: requests feed the scaler's ``LoadTracker``, whose ``ScalingLoop``
    steps the predictive policy; ``/admin/scaling`` shows the reactive target."""
    clock = ManualClock()
    settings = PredictiveSettings(reactive_queue_share=0.5, use_score=False, max_replicas=20)
    scaler = PredictiveScaler(InMemoryBackend(clock=clock), settings, clock=clock)
    tracker = scaler.tracker
    for _ in range(5):  # one request served, four waiting for a slot
        tracker.arrived()
    tracker.started(0.0)
    clock.advance(15.0)
    step = await scaler.loop.step()
    assert step.context.in_flight == 1 and step.context.queued == 4
    assert step.decision.details["reactive_replicas"] == 1 + 2
    assert step.decision.target == 3
    shown = scaler.loop.snapshot()["steps"][-1]  # what /admin/scaling returns
    assert shown["details"]["reactive_replicas"] == 3
    await scaler.close()
