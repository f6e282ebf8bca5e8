"""The autoscalers users run today, as pure policies: Kubernetes HPA, Knative KPA, Ray Serve.

Each follows its project's documented algorithm and defaults (the issue lists them), so the
simulator can compare ours against them on the same trace, and a user can run them live:

- :class:`HPAPolicy` — Kubernetes ``HorizontalPodAutoscaler`` (``autoscaling/v2``): every
  15 s, ``desired = ceil(ready × metric / target)`` (starting pods count at 0 when scaling up
  and at the target when scaling down, as the HPA treats pods without metrics), no change
  within the 0.1 tolerance, scale-up limited to max(+4 pods, +100 %) per 15 s with no
  stabilisation, scale-down stabilised over 300 s (the highest recommendation in the
  window). The metric is the pods' average of in-flight plus queued requests (a custom
  ``Pods`` metric with an ``AverageValue`` target).
- :class:`KPAPolicy` — Knative's pod autoscaler: every 2 s, ``ceil(average concurrency /
  target)`` with target 70 % of the container concurrency, averaged over a 60 s stable window
  and a 6 s panic window; panic when the panic window wants ≥ 2× the ready pods; while
  panicking it never scales down; at most halving per decision (max scale-down rate 2).
- :class:`RayServePolicy` — Ray Serve's default ``replica_queue_length_autoscaling_policy``:
  ``desired = total ongoing requests (averaged over 30 s) / target_ongoing_requests``,
  applied only after it has been wanted for ``upscale_delay_s`` (30 s) in a row, or
  ``downscale_delay_s`` (600 s) for a scale-down.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError
from ._types import (
    ScalingContext,
    ScalingDecision,
    check_positive,
    check_replica_bounds,
    clamp,
)

# -- Kubernetes HPA ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HPASettings:
    """The HPA's knobs; defaults are Kubernetes' (``target_value`` has none: it is the
    per-pod average of in-flight plus queued requests the user aims for)."""

    target_value: float = 0.7
    sync_period: float = 15.0
    tolerance: float = 0.1
    scale_up_pods: int = 4
    scale_up_percent: float = 100.0
    scale_up_period: float = 15.0
    scale_up_stabilization: float = 0.0
    scale_down_percent: float = 100.0
    scale_down_period: float = 15.0
    scale_down_stabilization: float = 300.0
    min_replicas: int = 1
    max_replicas: int = 20

    def __post_init__(self) -> None:
        check_replica_bounds(self.min_replicas, self.max_replicas)
        check_positive("target_value", self.target_value)
        check_positive("sync_period", self.sync_period)
        check_positive("tolerance", self.tolerance, allow_zero=True)
        check_positive("scale_up_pods", self.scale_up_pods, allow_zero=True)
        check_positive("scale_up_percent", self.scale_up_percent, allow_zero=True)
        check_positive("scale_up_period", self.scale_up_period)
        check_positive("scale_up_stabilization", self.scale_up_stabilization, allow_zero=True)
        check_positive("scale_down_percent", self.scale_down_percent, allow_zero=True)
        check_positive("scale_down_period", self.scale_down_period)
        check_positive("scale_down_stabilization", self.scale_down_stabilization, allow_zero=True)


@dataclass(frozen=True, slots=True)
class HPAState:
    """Recent recommendations ``(time, replicas)`` and scale events ``(time, change)``."""

    recommendations: tuple[tuple[float, int], ...] = ()
    events: tuple[tuple[float, int], ...] = ()


@dataclass(frozen=True, slots=True)
class HPAPolicy:
    """Kubernetes' HPA algorithm (``pkg/controller/podautoscaler``), one decision per sync."""

    settings: HPASettings = field(default_factory=HPASettings)
    name: str = "hpa"

    @property
    def interval(self) -> float:
        return self.settings.sync_period

    def initial_state(self) -> HPAState:
        return HPAState()

    def parameters(self) -> dict[str, Any]:
        return {
            "policy": "Kubernetes HPA (autoscaling/v2, default behavior)",
            "metric": "Pods metric: in-flight + queued requests per pod (AverageValue)",
            **asdict(self.settings),
        }

    def recommend(self, ctx: ScalingContext) -> int | None:
        """The replica calculator: the raw recommendation, or ``None`` without metrics."""
        s = self.settings
        current = ctx.target_replicas
        ready = ctx.ready_replicas
        if ready <= 0:
            return None  # no pod reports a metric: the HPA skips this sync
        usage = ctx.mean_ongoing  # sum over ready pods
        ratio = usage / (ready * s.target_value)
        missing = max(0, current - ready)
        if missing == 0:
            if abs(ratio - 1.0) <= s.tolerance:
                return current
            return math.ceil(ratio * ready)
        # pods without metrics (starting): 0 usage when scaling up, the target when down
        if ratio > 1.0:
            new_ratio = usage / ((ready + missing) * s.target_value)
        else:
            new_ratio = (usage + missing * s.target_value) / ((ready + missing) * s.target_value)
        if abs(new_ratio - 1.0) <= s.tolerance or (ratio > 1.0) != (new_ratio > 1.0):
            return current
        return math.ceil(new_ratio * (ready + missing))

    def decide(self, ctx: ScalingContext, state: HPAState) -> tuple[ScalingDecision, HPAState]:
        s = self.settings
        now = ctx.now
        current = ctx.target_replicas
        raw = self.recommend(ctx)
        if raw is None:
            return ScalingDecision.relative(current, current, "no ready pod reports metrics"), state
        # stabilisation: up = min of the up-window, down = max of the down-window
        up_cut = now - s.scale_up_stabilization
        down_cut = now - s.scale_down_stabilization
        up_rec = down_rec = raw
        for t, rec in state.recommendations:
            if t > up_cut:
                up_rec = min(up_rec, rec)
            if t > down_cut:
                down_rec = max(down_rec, rec)
        stabilized = max(current, up_rec)
        stabilized = min(stabilized, down_rec)
        keep = max(s.scale_up_stabilization, s.scale_down_stabilization)
        recs = (*(r for r in state.recommendations if r[0] > now - keep), (now, raw))
        # rate limits over the policies' periods (selectPolicy: Max)
        desired = stabilized
        if desired > current:
            added = sum(c for t, c in state.events if c > 0 and t > now - s.scale_up_period)
            start = current - added
            limit = max(start + s.scale_up_pods, math.ceil(start * (1 + s.scale_up_percent / 100)))
            desired = min(desired, limit)
        elif desired < current:
            removed = -sum(c for t, c in state.events if c < 0 and t > now - s.scale_down_period)
            start = current + removed
            limit = math.ceil(start * (1 - s.scale_down_percent / 100))
            desired = max(desired, limit)
        desired = clamp(desired, s.min_replicas, s.max_replicas)
        horizon = max(s.scale_up_period, s.scale_down_period)
        events = tuple(e for e in state.events if e[0] > now - horizon)
        if desired != current:
            events = (*events, (now, desired - current))
        decision = ScalingDecision.relative(
            desired,
            current,
            f"ongoing {ctx.mean_ongoing:.2f} on {ctx.ready_replicas} ready pods, "
            f"target {s.target_value}/pod",
            recommendation=raw,
            stabilized=stabilized,
        )
        return decision, HPAState(recs, events)


# -- Knative KPA ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KPASettings:
    """Knative's autoscaler defaults (``config-autoscaler``): ``container_concurrency`` is
    the hard limit per pod, ``target_utilization`` 70 % of it is the target."""

    container_concurrency: int = 1
    target_utilization: float = 0.7
    tick_interval: float = 2.0
    stable_window: float = 60.0
    panic_window_percentage: float = 10.0
    panic_threshold_percentage: float = 200.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    min_replicas: int = 1
    max_replicas: int = 20

    def __post_init__(self) -> None:
        check_replica_bounds(self.min_replicas, self.max_replicas)
        check_positive("container_concurrency", self.container_concurrency)
        check_positive("target_utilization", self.target_utilization)
        if self.target_utilization > 1:
            raise ConfigError("target_utilization", f"must be <= 1, got {self.target_utilization}")
        check_positive("tick_interval", self.tick_interval)
        check_positive("stable_window", self.stable_window)
        check_positive("panic_window_percentage", self.panic_window_percentage)
        check_positive("panic_threshold_percentage", self.panic_threshold_percentage)
        if self.max_scale_up_rate <= 1:
            raise ConfigError("max_scale_up_rate", f"must be > 1, got {self.max_scale_up_rate}")
        if self.max_scale_down_rate <= 1:
            raise ConfigError("max_scale_down_rate", f"must be > 1, got {self.max_scale_down_rate}")

    @property
    def target(self) -> float:
        """Concurrency per pod the autoscaler aims for."""
        return self.container_concurrency * self.target_utilization

    @property
    def panic_window(self) -> float:
        return self.stable_window * self.panic_window_percentage / 100.0


@dataclass(frozen=True, slots=True)
class KPAState:
    """Concurrency samples ``(time, average over the last tick)``, panic start and peak."""

    samples: tuple[tuple[float, float], ...] = ()
    panic_since: float | None = None
    max_panic_pods: int = 0


@dataclass(frozen=True, slots=True)
class KPAPolicy:
    """Knative Serving's KPA (``pkg/autoscaler/scaling/autoscaler.go``)."""

    settings: KPASettings = field(default_factory=KPASettings)
    name: str = "kpa"

    @property
    def interval(self) -> float:
        return self.settings.tick_interval

    def initial_state(self) -> KPAState:
        return KPAState()

    def parameters(self) -> dict[str, Any]:
        s = self.settings
        return {
            "policy": "Knative KPA (concurrency)",
            **asdict(s),
            "target_per_pod": s.target,
            "panic_window": s.panic_window,
        }

    def decide(self, ctx: ScalingContext, state: KPAState) -> tuple[ScalingDecision, KPAState]:
        s = self.settings
        now = ctx.now
        samples = (
            *(x for x in state.samples if x[0] > now - s.stable_window),
            (now, ctx.mean_ongoing),
        )
        stable = _window_mean(samples, now - s.stable_window)
        panic = _window_mean(samples, now - s.panic_window)
        ready = max(1, ctx.ready_replicas)
        max_up = math.ceil(s.max_scale_up_rate * ready)
        max_down = math.floor(ready / s.max_scale_down_rate)
        dspc = min(max(math.ceil(stable / s.target), max_down), max_up)
        dppc = min(max(math.ceil(panic / s.target), max_down), max_up)
        over = dppc / ready >= s.panic_threshold_percentage / 100.0
        panic_since = state.panic_since
        max_panic = state.max_panic_pods
        if over:
            panic_since = now
        elif panic_since is not None and panic_since + s.stable_window < now:
            panic_since, max_panic = None, 0
        if panic_since is not None:
            max_panic = max(max_panic, dppc)
            desired = max_panic
        else:
            desired = dspc
        desired = clamp(desired, s.min_replicas, s.max_replicas)
        decision = ScalingDecision.relative(
            desired,
            ctx.target_replicas,
            f"stable {stable:.2f}, panic {panic:.2f} concurrency; target {s.target}/pod"
            + (" (panic)" if panic_since is not None else ""),
            stable=stable,
            panic=panic,
            panicking=panic_since is not None,
        )
        return decision, KPAState(samples, panic_since, max_panic)


def _window_mean(samples: tuple[tuple[float, float], ...], cut: float) -> float:
    inside = [v for t, v in samples if t > cut]
    return sum(inside) / len(inside) if inside else 0.0


# -- Ray Serve -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RayServeSettings:
    """Ray Serve's ``AutoscalingConfig`` defaults, ``target_ongoing_requests`` set to the
    scenario's concurrency per replica (Ray's default is 2). ``control_interval`` is how
    often the controller runs the policy (Ray: 0.1 s; the delays count in seconds)."""

    target_ongoing_requests: float = 2.0
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    look_back_period_s: float = 30.0
    upscaling_factor: float = 1.0
    downscaling_factor: float = 1.0
    control_interval: float = 0.1
    min_replicas: int = 1
    max_replicas: int = 20

    def __post_init__(self) -> None:
        check_replica_bounds(self.min_replicas, self.max_replicas)
        check_positive("target_ongoing_requests", self.target_ongoing_requests)
        check_positive("upscale_delay_s", self.upscale_delay_s, allow_zero=True)
        check_positive("downscale_delay_s", self.downscale_delay_s, allow_zero=True)
        check_positive("look_back_period_s", self.look_back_period_s)
        check_positive("upscaling_factor", self.upscaling_factor)
        check_positive("downscaling_factor", self.downscaling_factor)
        check_positive("control_interval", self.control_interval)


@dataclass(frozen=True, slots=True)
class RayServeState:
    """Ongoing-request samples over the look-back window and Ray's decision counter."""

    samples: tuple[tuple[float, float], ...] = ()
    decision_counter: int = 0


@dataclass(frozen=True, slots=True)
class RayServePolicy:
    """Ray Serve's ``replica_queue_length_autoscaling_policy`` with its default wrapper
    (scaling factors, bounds, upscale/downscale delays counted in control-loop periods)."""

    settings: RayServeSettings = field(default_factory=RayServeSettings)
    name: str = "ray"

    @property
    def interval(self) -> float:
        return self.settings.control_interval

    def initial_state(self) -> RayServeState:
        return RayServeState()

    def parameters(self) -> dict[str, Any]:
        return {
            "policy": "Ray Serve replica_queue_length_autoscaling_policy",
            **asdict(self.settings),
        }

    def decide(
        self, ctx: ScalingContext, state: RayServeState
    ) -> tuple[ScalingDecision, RayServeState]:
        s = self.settings
        now = ctx.now
        samples = (
            *(x for x in state.samples if x[0] > now - s.look_back_period_s),
            (now, ctx.mean_ongoing),
        )
        total = _window_mean(samples, now - s.look_back_period_s)
        target_now = ctx.target_replicas
        running = ctx.ready_replicas
        if running == 0:  # cold start: Ray keeps the current target
            decision = ScalingDecision.relative(target_now, target_now, "no running replica yet")
            return decision, RayServeState(samples, state.decision_counter)
        desired_f = total / s.target_ongoing_requests
        delta = desired_f - running
        factor = s.upscaling_factor if delta > 0 else s.downscaling_factor
        scaled = math.ceil(running + factor * delta)
        if math.ceil(desired_f) < running and scaled == running:
            scaled -= 1
        bounded = clamp(scaled, s.min_replicas, s.max_replicas)
        counter = state.decision_counter
        decided = target_now
        up_periods = int(s.upscale_delay_s / s.control_interval)
        down_periods = int(s.downscale_delay_s / s.control_interval)
        if bounded > target_now:
            counter = max(counter, 0) + 1
            if counter > up_periods:
                counter, decided = 0, bounded
        elif bounded < target_now:
            counter = min(counter, 0) - 1
            if counter < -down_periods:
                # Ray scales to zero only from one replica; otherwise never below one
                counter, decided = 0, bounded if target_now == 1 else max(1, bounded)
        else:
            counter = 0
        decision = ScalingDecision.relative(
            decided,
            target_now,
            f"ongoing {total:.2f} (avg {s.look_back_period_s:.0f}s) → {bounded} wanted, "
            f"counter {counter}",
            desired=bounded,
            total_ongoing=total,
            decision_counter=counter,
        )
        return decision, RayServeState(samples, counter)
