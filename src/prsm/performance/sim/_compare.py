"""Run several policies on one scenario and compare them: the peers built for the scenario
(each with its documented defaults, its target set to the scenario's concurrency per
replica), ours, and the oracle; a summary row per policy over the reporting window."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..errors import ConfigError
from ..scaling._peers import (
    HPAPolicy,
    HPASettings,
    KPAPolicy,
    KPASettings,
    RayServePolicy,
    RayServeSettings,
)
from ..scaling._predictive import PredictivePolicy, PredictiveSettings
from ..scaling._types import ScalingPolicy
from ._engine import Progress, SimulationSettings, simulate
from ._oracle import OraclePolicy
from ._result import SimulationResult
from ._traces import Trace

SIM_POLICIES: tuple[str, ...] = ("hpa", "kpa", "ray", "predictive", "oracle")


@dataclass(frozen=True, slots=True)
class Scenario:
    """A trace, the deployment it runs on, and the window the figures are reported over
    (seconds from the trace's start; ``report_end`` None: to the end)."""

    trace: Trace
    settings: SimulationSettings = field(default_factory=SimulationSettings)
    report_start: float = 0.0
    report_end: float | None = None
    look_ahead: float = 60.0
    ray_interval: float = 1.0


def _override(obj: Any, changes: Mapping[str, Any], where: str) -> Any:
    if not changes:
        return obj
    known = {f.name: f for f in fields(obj)}
    typed: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in known:
            raise ConfigError(f"{where}.{key}", f"unknown parameter; known: {sorted(known)}")
        current = getattr(obj, key)
        typed[key] = (
            type(current)(value)
            if isinstance(current, (int, float)) and not isinstance(current, bool)
            else value
        )
    return replace(obj, **typed)


def make_policy(
    name: str, scenario: Scenario, params: Mapping[str, Any] | None = None
) -> ScalingPolicy[Any]:
    """One of :data:`SIM_POLICIES` for ``scenario``; ``params`` override its settings (for
    ``predictive``, ``predictor.X``, ``burst.X`` and ``seasonal.X`` keys reach the forecaster's, the
    burst table's and the seasonal burst floor's settings)."""
    s = scenario.settings
    p = dict(params or {})
    lo, hi = s.min_replicas, s.max_replicas
    if name == "hpa":
        hpa = HPASettings(target_value=float(s.concurrency), min_replicas=lo, max_replicas=hi)
        return HPAPolicy(_override(hpa, p, "hpa"))
    if name == "kpa":
        kpa = KPASettings(container_concurrency=s.concurrency, min_replicas=lo, max_replicas=hi)
        return KPAPolicy(_override(kpa, p, "kpa"))
    if name == "ray":
        base = RayServeSettings(
            target_ongoing_requests=float(s.concurrency),
            control_interval=scenario.ray_interval,
            min_replicas=lo,
            max_replicas=hi,
        )
        return RayServePolicy(_override(base, p, "ray"))
    if name == "predictive":
        nested = {
            part: {k.split(".", 1)[1]: v for k, v in p.items() if k.startswith(f"{part}.")}
            for part in ("predictor", "burst", "seasonal")
        }
        rest = {
            k: v for k, v in p.items() if not k.startswith(("predictor.", "burst.", "seasonal."))
        }
        base_p = PredictiveSettings(slo=s.slo, min_replicas=lo, max_replicas=hi)
        base_p = replace(
            base_p,
            predictor=_override(base_p.predictor, nested["predictor"], "predictor"),
            burst=_override(base_p.burst, nested["burst"], "burst"),
            seasonal=_override(base_p.seasonal, nested["seasonal"], "seasonal"),
        )
        return PredictivePolicy(_override(base_p, rest, "predictive"))
    if name == "oracle":
        oracle_params = {"look_ahead": scenario.look_ahead, **p}
        return OraclePolicy.for_trace(
            scenario.trace,
            startup_time=s.startup_time,
            concurrency=s.concurrency,
            min_replicas=lo,
            max_replicas=hi,
            **{k: float(v) for k, v in oracle_params.items()},
        )
    raise ConfigError("policy", f"unknown policy {name!r}; known: {', '.join(SIM_POLICIES)}")


def run_policies(
    scenario: Scenario,
    policies: Sequence[str] | Mapping[str, ScalingPolicy[Any]],
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Callable[[str], Progress] | None = None,
) -> dict[str, SimulationResult]:
    """Simulate each policy on the scenario (names are built by :func:`make_policy`)."""
    built: dict[str, ScalingPolicy[Any]] = (
        dict(policies)
        if isinstance(policies, Mapping)
        else {n: make_policy(n, scenario, (params or {}).get(n)) for n in policies}
    )
    out = {}
    for name, policy in built.items():
        out[name] = simulate(
            scenario.trace,
            policy,
            scenario.settings,
            progress=progress(name) if progress is not None else None,
        )
    return out


def summary_rows(
    results: Mapping[str, SimulationResult], scenario: Scenario
) -> list[dict[str, Any]]:
    """One row per policy over the reporting window."""
    return [r.summary(scenario.report_start, scenario.report_end) for r in results.values()]
