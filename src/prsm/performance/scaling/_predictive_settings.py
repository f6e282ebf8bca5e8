"""The settings of our policy (:class:`~prsm.performance.scaling.PredictivePolicy`; the
decision they steer is described in :mod:`prsm.performance.scaling._predictive`), each field
validated, a bad one named."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from ._burst import BurstSettings, check_quantile
from ._predictor import PredictorSettings
from ._score import LatencyMetric, ScoreSettings, default_metrics
from ._seasonal import SeasonalSettings
from ._types import check_positive, check_replica_bounds, check_whole


@dataclass(frozen=True, slots=True)
class PredictiveSettings:
    """See :mod:`prsm.performance.scaling._predictive`; every field is validated."""

    min_replicas: int = 1
    max_replicas: int = 20
    interval: float = 15.0
    slo: float = 30.0
    wait_probability: float = 0.05
    reactive_utilization: float = 1.0
    reactive_queue_share: float = 1.0
    lead: float = 60.0
    scale_up_window: float = 0.0
    scale_down_window: float = 600.0
    max_step_up: int = 4
    max_step_up_percent: float = 100.0
    max_step_down: int = 1
    cost_per_replica_hour: float = 1.0
    cost_limit_per_hour: float | None = None
    default_service_time: float = 1.0
    use_score: bool = True
    session_wait_probability: float | None = None
    session_hold: float = 60.0
    session_new_window: float | None = None
    session_error_quantile: float | None = None
    session_error_span: float = 21600.0
    burst_quantile: float | None = None
    burst_hold_only: bool = False
    burst: BurstSettings = field(default_factory=BurstSettings)
    seasonal_share: float | None = None
    seasonal: SeasonalSettings = field(default_factory=SeasonalSettings)
    seasonal_hold_only: bool = False
    predictor: PredictorSettings = field(default_factory=PredictorSettings)

    def __post_init__(self) -> None:
        check_replica_bounds(self.min_replicas, self.max_replicas)
        check_positive("interval", self.interval)
        check_positive("slo", self.slo)
        if not 0 < self.wait_probability < 1:
            raise ConfigError(
                "wait_probability", f"must be in (0, 1), got {self.wait_probability!r}"
            )
        if not 0 < self.reactive_utilization <= 1:
            raise ConfigError(
                "reactive_utilization", f"must be in (0, 1], got {self.reactive_utilization!r}"
            )
        share = self.reactive_queue_share
        if isinstance(share, bool) or not (isinstance(share, (int, float)) and 0 <= share <= 1):
            raise ConfigError(
                "reactive_queue_share", f"must be in [0, 1], got {self.reactive_queue_share!r}"
            )
        check_positive("lead", self.lead, allow_zero=True)
        check_positive("scale_up_window", self.scale_up_window, allow_zero=True)
        check_positive("scale_down_window", self.scale_down_window, allow_zero=True)
        check_whole("max_step_up", self.max_step_up, 1)
        check_whole("max_step_down", self.max_step_down, 1)
        check_positive("max_step_up_percent", self.max_step_up_percent, allow_zero=True)
        check_positive("cost_per_replica_hour", self.cost_per_replica_hour, allow_zero=True)
        if self.cost_limit_per_hour is not None:
            check_positive("cost_limit_per_hour", self.cost_limit_per_hour)
            if self.cost_per_replica_hour * self.min_replicas > self.cost_limit_per_hour:
                raise ConfigError(
                    "cost_limit_per_hour",
                    f"{self.cost_limit_per_hour} does not pay for min_replicas "
                    f"({self.min_replicas} × {self.cost_per_replica_hour}/h)",
                )
        check_positive("default_service_time", self.default_service_time)
        if self.session_wait_probability is not None and not 0 < self.session_wait_probability < 1:
            raise ConfigError(
                "session_wait_probability",
                f"must be in (0, 1) or null, got {self.session_wait_probability!r}",
            )
        check_positive("session_hold", self.session_hold, allow_zero=True)
        if self.session_new_window is not None:
            check_positive("session_new_window", self.session_new_window)
        if self.session_error_quantile is not None:
            check_quantile("session_error_quantile", self.session_error_quantile)
        check_positive("session_error_span", self.session_error_span)
        if self.burst_quantile is not None:
            check_quantile("burst_quantile", self.burst_quantile)
        if not isinstance(self.burst_hold_only, bool):
            raise ConfigError(
                "burst_hold_only", f"must be true or false, got {self.burst_hold_only!r}"
            )
        if self.seasonal_share is not None:
            share = self.seasonal_share
            if isinstance(share, bool) or not (isinstance(share, (int, float)) and 0 < share <= 4):
                raise ConfigError(
                    "seasonal_share", f"must be in (0, 4] or null, got {self.seasonal_share!r}"
                )
        if not isinstance(self.seasonal_hold_only, bool):
            raise ConfigError(
                "seasonal_hold_only", f"must be true or false, got {self.seasonal_hold_only!r}"
            )
        if not isinstance(self.use_score, bool):
            raise ConfigError("use_score", f"must be true or false, got {self.use_score!r}")

    def score_settings(self) -> ScoreSettings:
        """The post's weights and thresholds, latency judged against this SLO."""
        metrics = default_metrics()
        metrics["latency"] = LatencyMetric(full=self.slo)
        return ScoreSettings(metrics)

    @property
    def affordable_replicas(self) -> int:
        """The most replicas the cost limit pays for (``max_replicas`` without a limit)."""
        if self.cost_limit_per_hour is None or self.cost_per_replica_hour == 0:
            return self.max_replicas
        return min(self.max_replicas, int(self.cost_limit_per_hour // self.cost_per_replica_hour))
