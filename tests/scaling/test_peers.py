"""The peers reproduce their documented behaviour on hand-made step loads (pure policies
driven tick by tick, as the simulator and the live loop drive them)."""

from __future__ import annotations

from typing import Any

import pytest

from prsm.performance.errors import ConfigError
from prsm.performance.scaling import (
    HPAPolicy,
    HPASettings,
    KPAPolicy,
    KPASettings,
    RayServePolicy,
    RayServeSettings,
    ScalingAction,
    ScalingContext,
)


class Deployment:
    """Replicas that become ready at once: each decision's target is the next replica count."""

    def __init__(self, policy: Any, replicas: int) -> None:
        self.policy = policy
        self.state = policy.initial_state()
        self.replicas = replicas
        self.now = 0.0
        self.targets: list[tuple[float, int]] = []

    def tick(self, ongoing: float, *, starting: int = 0) -> int:
        self.now += self.policy.interval
        ctx = ScalingContext(
            now=self.now,
            ready_replicas=self.replicas - starting,
            starting_replicas=starting,
            target_replicas=self.replicas,
            mean_ongoing=ongoing,
            interval=self.policy.interval,
        )
        decision, self.state = self.policy.decide(ctx, self.state)
        self.replicas = decision.target
        self.targets.append((self.now, decision.target))
        return decision.target

    def run(self, seconds: float, ongoing: float) -> list[int]:
        return [self.tick(ongoing) for _ in range(round(seconds / self.policy.interval))]


# -- Kubernetes HPA ------------------------------------------------------------------------


def test_hpa_scale_up_is_limited_to_four_pods_or_double_per_period() -> None:
    d = Deployment(HPAPolicy(HPASettings(target_value=1.0, max_replicas=50)), replicas=2)
    # 30 requests on 2 pods: desired 30; first sync max(2 + 4, 2 × 2) = 6, then 12, 24, 30
    assert [d.tick(30.0 * d.replicas / d.replicas) for _ in range(4)] == [6, 12, 24, 30]


def test_hpa_scale_up_from_one_pod_takes_the_pods_policy() -> None:
    d = Deployment(HPAPolicy(HPASettings(target_value=1.0)), replicas=1)
    assert d.tick(9.0) == 5  # max(1 + 4, 1 × 2)


def test_hpa_ignores_changes_within_the_tolerance() -> None:
    d = Deployment(HPAPolicy(HPASettings(target_value=1.0)), replicas=10)
    assert d.tick(10.9) == 10  # ratio 1.09: inside 0.1
    assert d.tick(11.5) == 12  # ratio 1.15: ceil(1.15 × 10)


def test_hpa_scale_down_waits_for_the_300s_window_and_takes_its_highest() -> None:
    d = Deployment(HPAPolicy(HPASettings(target_value=1.0)), replicas=8)
    d.run(60, ongoing=8.0)  # steady at 8
    low = d.run(300, ongoing=2.0)  # the load falls to 2 at t = 60
    # for 300 s the window still holds a recommendation of 8
    assert set(low[:-1]) == {8}
    assert low[-1] == 2  # t = 360: the last 8 left the window; 100 %/15 s allows it at once
    # a short spike inside the window holds the highest recommendation
    d.run(30, ongoing=6.0)
    assert d.replicas == 6
    after = d.run(300, ongoing=2.0)
    assert set(after[:-1]) == {6} and after[-1] == 2


def test_hpa_counts_starting_pods_at_zero_when_scaling_up() -> None:
    policy = HPAPolicy(HPASettings(target_value=1.0))
    ctx = ScalingContext(
        now=15.0, ready_replicas=2, starting_replicas=2, target_replicas=4, mean_ongoing=6.0
    )
    # ready pods alone: ratio 3 → 6; with the 2 starting pods at 0: 6 / 4 = 1.5 → 6
    assert policy.recommend(ctx) == 6
    ctx = ScalingContext(
        now=15.0, ready_replicas=2, starting_replicas=2, target_replicas=4, mean_ongoing=4.3
    )
    # ratio 2.15 → with missing pods 4.3 / 4 = 1.075: inside the tolerance, stay at 4
    assert policy.recommend(ctx) == 4


def test_hpa_without_ready_pods_keeps_its_target() -> None:
    policy = HPAPolicy()
    ctx = ScalingContext(now=15.0, ready_replicas=0, starting_replicas=1, target_replicas=1)
    decision, _ = policy.decide(ctx, policy.initial_state())
    assert decision.target == 1 and decision.action is ScalingAction.MAINTAIN


# -- Knative KPA ---------------------------------------------------------------------------


def test_kpa_stable_mode_targets_70_percent_of_the_container_concurrency() -> None:
    d = Deployment(KPAPolicy(KPASettings(container_concurrency=10)), replicas=1)
    d.run(60, ongoing=35.0)  # 35 / 7 = 5 pods; the panic window also wants 5 ≥ 2 × 1: panic
    assert d.replicas == 5
    d.run(120, ongoing=35.0)  # steady: out of panic after 60 s, stable mode, still 5
    assert d.replicas == 5 and d.state.panic_since is None


def test_kpa_panics_on_a_burst_and_never_scales_down_while_panicking() -> None:
    d = Deployment(KPAPolicy(KPASettings(container_concurrency=1)), replicas=2)
    d.run(60, ongoing=1.0)  # 1 / 0.7 → 2 pods, calm
    assert d.replicas == 2 and d.state.panic_since is None
    burst = d.tick(10.0)  # the 6 s panic window averages 10/3 + 2/3 → 5 pods; 5/2 ≥ 2: panic
    assert d.state.panic_since is not None and burst >= 5
    peak = max(d.run(6, ongoing=10.0))
    assert peak == 15  # ceil(10 / 0.7)
    last_over = d.state.panic_since
    assert last_over is not None
    calm_from = d.now
    d.run(60, ongoing=1.0)  # load gone: panic mode holds the peak…
    held = [r for t, r in d.targets if calm_from < t <= last_over + 60]
    assert set(held) == {15}
    # …until the panic condition has been false for a stable window: stable mode, halving
    assert d.state.panic_since is None and d.replicas < 15


def test_kpa_at_most_halves_per_decision() -> None:
    d = Deployment(KPAPolicy(KPASettings(container_concurrency=1)), replicas=16)
    d.state = d.policy.initial_state()
    steps = [d.tick(0.0) for _ in range(4)]
    assert steps == [8, 4, 2, 1]


# -- Ray Serve -----------------------------------------------------------------------------


def ray(**kw: Any) -> RayServePolicy:
    return RayServePolicy(RayServeSettings(target_ongoing_requests=1.0, control_interval=1.0, **kw))


def test_ray_scales_up_only_after_30s_of_wanting_it() -> None:
    d = Deployment(ray(), replicas=1)
    ups = d.run(40, ongoing=4.0)
    first = next(i for i, r in enumerate(ups) if r > 1)
    # the decision counter must exceed upscale_delay_s / interval = 30 periods
    assert first == 30 and ups[first] == 4


def test_ray_averages_ongoing_requests_over_the_look_back_period() -> None:
    policy = ray()
    state = policy.initial_state()
    for t in range(1, 31):
        ctx = ScalingContext(now=float(t), ready_replicas=1, target_replicas=1, mean_ongoing=0.0)
        _, state = policy.decide(ctx, state)
    ctx = ScalingContext(now=31.0, ready_replicas=1, target_replicas=1, mean_ongoing=30.0)
    decision, _ = policy.decide(ctx, state)
    assert decision.details["total_ongoing"] == pytest.approx(1.0)  # 30 / 30 samples


def test_ray_scales_down_after_600s_and_resets_on_a_change_of_mind() -> None:
    d = Deployment(ray(), replicas=4)
    downs = d.run(700, ongoing=1.0)
    first = next(i for i, r in enumerate(downs) if r < 4)
    assert first == 600 and downs[first] == 1
    d2 = Deployment(ray(), replicas=4)
    d2.run(300, ongoing=1.0)
    d2.run(5, ongoing=40.0)  # wanting to scale up resets the (negative) counter
    assert d2.state.decision_counter > 0
    assert d2.run(300, ongoing=1.0)[-1] == 4


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: HPASettings(target_value=0), "target_value"),
        (lambda: HPASettings(min_replicas=5, max_replicas=2), "min_replicas"),
        (lambda: KPASettings(target_utilization=1.5), "target_utilization"),
        (lambda: KPASettings(max_scale_down_rate=1.0), "max_scale_down_rate"),
        (lambda: RayServeSettings(upscale_delay_s=-1), "upscale_delay_s"),
    ],
)
def test_bad_settings_name_the_field(build: Any, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build()
    assert err.value.field == field


def test_parameters_are_reported() -> None:
    for policy in (HPAPolicy(), KPAPolicy(), ray()):
        params = policy.parameters()
        assert params["policy"] and params["max_replicas"] == 20
