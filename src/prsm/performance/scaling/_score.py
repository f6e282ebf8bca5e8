"""The post's multi-signal score: ``MultiDimensionalScaler`` and its five metrics.

Each metric normalises its reading to ``[0, 1]`` and weighs it: cpu utilisation (0.3),
memory utilisation (0.25), latency against the SLO (0.2), queue depth against a full queue
(0.15), error rate against a bad one (0.1). The weighted sum is the score: above 0.8
:attr:`~ScalingAction.SCALE_UP`, below 0.3 :attr:`~ScalingAction.SCALE_DOWN`, else
:attr:`~ScalingAction.MAINTAIN`. A signal with no reading is left out and the others'
weights are rescaled to sum to one (so a deployment without, say, memory readings is
judged on the rest, not pushed towards scaling down). :func:`score_signals` is the pure
function; :class:`MultiDimensionalScaler` adds the post's async method, reading each metric
from its ``source`` when no :class:`ScalingSignals` are given.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import ConfigError
from ._types import ScalingAction, ScalingSignals

Source = Callable[[], "Awaitable[float | None] | float | None"]


@dataclass(frozen=True, slots=True)
class ScalingMetric:
    """One signal: its ``weight``, the reading that counts as full (``full``: normalised
    value 1), and optionally a ``source`` the scaler reads it from (sync or async)."""

    weight: float
    full: float = 1.0
    source: Source | None = field(default=None, compare=False, repr=False)
    signal: ClassVar[str] = ""

    def __post_init__(self) -> None:
        name = self.signal or type(self).__name__
        if not isinstance(self.weight, (int, float)) or not 0 <= self.weight <= 1:
            raise ConfigError(f"{name}.weight", f"must be in [0, 1], got {self.weight!r}")
        if (
            not isinstance(self.full, (int, float))
            or not self.full > 0
            or not math.isfinite(self.full)
        ):
            raise ConfigError(f"{name}.full", f"must be a number > 0, got {self.full!r}")

    def normalize(self, value: float) -> float:
        """``value / full`` bounded to ``[0, 1]``."""
        if not math.isfinite(value):
            return 1.0 if value > 0 else 0.0
        return min(1.0, max(0.0, value / self.full))

    def reading(self, signals: ScalingSignals) -> float | None:
        value: float | None = getattr(signals, self.signal)
        return value

    async def get_current_value(self) -> float | None:
        """The reading from ``source`` (the post's method); ``None`` without a source."""
        if self.source is None:
            return None
        value = self.source()
        if inspect.isawaitable(value):
            value = await value
        return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class CPUMetric(ScalingMetric):
    """CPU utilisation, 0–1 (``full`` 1.0)."""

    weight: float = 0.3
    signal: ClassVar[str] = "cpu"


@dataclass(frozen=True, slots=True)
class MemoryMetric(ScalingMetric):
    """Memory utilisation, 0–1 (``full`` 1.0)."""

    weight: float = 0.25
    signal: ClassVar[str] = "memory"


@dataclass(frozen=True, slots=True)
class LatencyMetric(ScalingMetric):
    """Latency in seconds against the SLO: ``full`` is the SLO (1 s by default)."""

    weight: float = 0.2
    signal: ClassVar[str] = "latency"


@dataclass(frozen=True, slots=True)
class QueueMetric(ScalingMetric):
    """Requests waiting per replica; ``full`` is a queue that should never be longer (10)."""

    weight: float = 0.15
    full: float = 10.0
    signal: ClassVar[str] = "queue_depth"


@dataclass(frozen=True, slots=True)
class ErrorMetric(ScalingMetric):
    """Error rate, 0–1; ``full`` is a rate that is plainly bad (5 %)."""

    weight: float = 0.1
    full: float = 0.05
    signal: ClassVar[str] = "error_rate"


def default_metrics() -> dict[str, ScalingMetric]:
    """The post's five metrics with its weights."""
    return {
        "cpu": CPUMetric(),
        "memory": MemoryMetric(),
        "latency": LatencyMetric(),
        "queue_depth": QueueMetric(),
        "error_rate": ErrorMetric(),
    }


@dataclass(frozen=True, slots=True)
class ScoreSettings:
    """The metrics (weights summing to 1) and the two thresholds (0 ≤ down < up ≤ 1)."""

    metrics: Mapping[str, ScalingMetric] = field(default_factory=default_metrics)
    scale_up_threshold: float = 0.8
    scale_down_threshold: float = 0.3

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ConfigError("metrics", "give at least one metric")
        for name, m in self.metrics.items():
            if not isinstance(m, ScalingMetric):
                raise ConfigError(
                    f"metrics.{name}", f"must be a ScalingMetric, got {type(m).__name__}"
                )
        total = sum(m.weight for m in self.metrics.values())
        if abs(total - 1.0) > 1e-6:
            raise ConfigError("metrics", f"weights must sum to 1, they sum to {total:.6g}")
        up, down = self.scale_up_threshold, self.scale_down_threshold
        if not isinstance(up, (int, float)) or not 0 < up <= 1:
            raise ConfigError("scale_up_threshold", f"must be in (0, 1], got {up!r}")
        if not isinstance(down, (int, float)) or not 0 <= down < up:
            raise ConfigError(
                "scale_down_threshold", f"must be in [0, scale_up_threshold={up}), got {down!r}"
            )


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """The score, the action, and per signal its normalised value and weighted share."""

    score: float
    action: ScalingAction
    normalized: dict[str, float]
    contributions: dict[str, float]
    missing: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 4),
            "action": self.action.value,
            "normalized": {k: round(v, 4) for k, v in self.normalized.items()},
            "contributions": {k: round(v, 4) for k, v in self.contributions.items()},
            "missing": list(self.missing),
        }


def score_signals(
    readings: Mapping[str, float | None], settings: ScoreSettings | None = None
) -> ScoreResult:
    """The weighted score of ``readings`` (signal name → value or ``None``)."""
    s = settings or ScoreSettings()
    present = {n: m for n, m in s.metrics.items() if readings.get(n) is not None}
    missing = tuple(n for n in s.metrics if n not in present)
    weight = sum(m.weight for m in present.values())
    if not present or weight <= 0:
        return ScoreResult(0.0, ScalingAction.MAINTAIN, {}, {}, missing)
    normalized = {n: m.normalize(float(readings[n])) for n, m in present.items()}  # type: ignore[arg-type]
    contributions = {n: normalized[n] * m.weight / weight for n, m in present.items()}
    total = sum(contributions.values())
    if total > s.scale_up_threshold:
        action = ScalingAction.SCALE_UP
    elif total < s.scale_down_threshold:
        action = ScalingAction.SCALE_DOWN
    else:
        action = ScalingAction.MAINTAIN
    return ScoreResult(total, action, normalized, contributions, missing)


def signal_readings(
    signals: ScalingSignals, settings: ScoreSettings | None = None
) -> dict[str, float | None]:
    """Each metric's reading from a :class:`ScalingSignals` snapshot."""
    s = settings or ScoreSettings()
    return {n: m.reading(signals) for n, m in s.metrics.items()}


class MultiDimensionalScaler:
    """The post's scaler: ``await determine_scaling_action()`` → a :class:`ScalingAction`.

    ``metrics`` maps signal names to metrics (default: the post's five and weights). Given
    ``signals``, it scores them; otherwise it reads each metric's ``source``. The last
    result stays in :attr:`last` (for metrics and ``/admin/scaling``).
    """

    def __init__(
        self,
        metrics: Mapping[str, ScalingMetric] | None = None,
        *,
        scale_up_threshold: float = 0.8,
        scale_down_threshold: float = 0.3,
    ) -> None:
        self.settings = ScoreSettings(
            dict(metrics) if metrics is not None else default_metrics(),
            scale_up_threshold,
            scale_down_threshold,
        )
        self.last: ScoreResult | None = None

    @property
    def metrics(self) -> Mapping[str, ScalingMetric]:
        return self.settings.metrics

    def score(self, signals: ScalingSignals | Mapping[str, float | None]) -> ScoreResult:
        readings = (
            signal_readings(signals, self.settings)
            if isinstance(signals, ScalingSignals)
            else signals
        )
        self.last = score_signals(readings, self.settings)
        return self.last

    async def read(self) -> dict[str, float | None]:
        """Every metric's current value from its source."""
        return {n: await m.get_current_value() for n, m in self.settings.metrics.items()}

    async def determine_scaling_action(
        self, signals: ScalingSignals | Mapping[str, float | None] | None = None
    ) -> ScalingAction:
        return self.score(signals if signals is not None else await self.read()).action
