"""Settings of :class:`~._analytics.PerformanceAnalytics` (config section ``analytics``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class AnalyticsSettings:
    """What the analysis reads and how it judges.

    ``latency_objective`` / ``latency_quantile``: the SLO the Erlang C model sizes replicas for
    (seconds, and its quantile). ``scale_up_utilization`` and
    ``scale_down_utilization`` are the post's scaler thresholds (0.8 / 0.3), applied to the
    fleet's utilisation (offered load / replicas). ``min_change``: the relative change over the
    window a significant trend must make to become an insight. ``replica_cost_per_hour``: the
    cost model for savings (None: savings are given in replicas and capacity share only).
    ``seasonal_period``: used once the window spans two periods. ``gateway_cores_per_process``:
    the cores one gateway process can use (one event loop under the GIL: about one), for the
    gateway's CPU ceiling (cores / CPU seconds a request).
    """

    period: float = 86400.0
    step: float | None = None
    alpha: float = 0.05
    seasonal_period: float | None = 86400.0
    latency_objective: float = 1.0
    latency_quantile: float = 0.95
    scale_up_utilization: float = 0.8
    scale_down_utilization: float = 0.3
    min_change: float = 0.1
    saturation_horizon: float = 7 * 86400.0
    replica_cost_per_hour: float | None = None
    max_anomalies: int = 50
    gateway_cores_per_process: float = 1.0

    def __post_init__(self) -> None:
        for name in (
            "period",
            "latency_objective",
            "saturation_horizon",
            "gateway_cores_per_process",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(name, f"must be > 0, got {value!r}")
        if self.step is not None and not self.step > 0:
            raise ConfigError("step", f"must be > 0 seconds or None, got {self.step!r}")
        if self.seasonal_period is not None and not self.seasonal_period > 0:
            raise ConfigError("seasonal_period", "must be > 0 seconds or None")
        for name in ("alpha", "latency_quantile"):
            if not 0 < getattr(self, name) < 1:
                raise ConfigError(name, f"must be in (0, 1), got {getattr(self, name)!r}")
        if not 0 < self.scale_down_utilization < self.scale_up_utilization < 1:
            raise ConfigError(
                "scale_down_utilization",
                "need 0 < scale_down_utilization < scale_up_utilization < 1",
            )
        if self.min_change < 0:
            raise ConfigError("min_change", f"must be >= 0, got {self.min_change!r}")
        if self.replica_cost_per_hour is not None and not self.replica_cost_per_hour >= 0:
            raise ConfigError("replica_cost_per_hour", "must be >= 0 or None")
        if self.max_anomalies < 0:
            raise ConfigError("max_anomalies", f"must be >= 0, got {self.max_anomalies!r}")
