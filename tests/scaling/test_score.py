"""The post's multi-signal score: weights, thresholds, missing signals, validation."""

from __future__ import annotations

from typing import Any

import pytest

from prsm.performance.errors import ConfigError
from prsm.performance.scaling import (
    CPUMetric,
    ErrorMetric,
    LatencyMetric,
    MemoryMetric,
    MultiDimensionalScaler,
    QueueMetric,
    ScalingAction,
    ScalingSignals,
    ScoreSettings,
    score_signals,
)


def test_the_posts_weights_and_thresholds() -> None:
    m = MultiDimensionalScaler().metrics
    assert {k: v.weight for k, v in m.items()} == {
        "cpu": 0.3, "memory": 0.25, "latency": 0.2, "queue_depth": 0.15, "error_rate": 0.1,
    }  # fmt: skip
    s = ScoreSettings()
    assert (s.scale_up_threshold, s.scale_down_threshold) == (0.8, 0.3)


@pytest.mark.parametrize(
    ("signals", "action"),
    [
        (
            ScalingSignals(cpu=1.0, memory=1.0, latency=1.0, queue_depth=10, error_rate=0.05),
            ScalingAction.SCALE_UP,
        ),
        (
            ScalingSignals(cpu=0.9, memory=0.9, latency=0.9, queue_depth=9, error_rate=0.045),
            ScalingAction.SCALE_UP,
        ),
        (
            ScalingSignals(cpu=0.5, memory=0.5, latency=0.5, queue_depth=5, error_rate=0.025),
            ScalingAction.MAINTAIN,
        ),
        (
            ScalingSignals(cpu=0.1, memory=0.2, latency=0.1, queue_depth=0, error_rate=0.0),
            ScalingAction.SCALE_DOWN,
        ),
    ],
)
def test_actions_from_the_weighted_score(signals: ScalingSignals, action: ScalingAction) -> None:
    assert MultiDimensionalScaler().score(signals).action is action


def test_score_is_the_weighted_sum_of_normalised_readings() -> None:
    result = score_signals(
        {"cpu": 0.5, "memory": 0.2, "latency": 2.0, "queue_depth": 5.0, "error_rate": 0.01}
    )
    # 0.3·0.5 + 0.25·0.2 + 0.2·min(1, 2/1) + 0.15·(5/10) + 0.1·(0.01/0.05)
    assert result.score == pytest.approx(0.15 + 0.05 + 0.2 + 0.075 + 0.02)
    assert result.normalized["latency"] == 1.0  # capped


def test_missing_signals_are_left_out_and_the_rest_reweighted() -> None:
    result = score_signals(
        {"cpu": 0.9, "memory": None, "latency": None, "queue_depth": None, "error_rate": None}
    )
    assert result.score == pytest.approx(0.9) and result.action is ScalingAction.SCALE_UP
    assert set(result.missing) == {"memory", "latency", "queue_depth", "error_rate"}
    assert score_signals({}).action is ScalingAction.MAINTAIN


async def test_determine_scaling_action_reads_each_metric_source() -> None:
    async def latency() -> float:
        return 3.0  # three times the SLO

    scaler = MultiDimensionalScaler(
        {
            "cpu": CPUMetric(source=lambda: 0.95),
            "memory": MemoryMetric(source=lambda: 0.9),
            "latency": LatencyMetric(full=1.0, source=latency),
            "queue_depth": QueueMetric(source=lambda: 12),
            "error_rate": ErrorMetric(source=lambda: None),
        }
    )
    assert await scaler.determine_scaling_action() is ScalingAction.SCALE_UP
    assert scaler.last is not None and scaler.last.missing == ("error_rate",)
    low = ScalingSignals(cpu=0.0, memory=0.0, latency=0.0, queue_depth=0.0, error_rate=0.0)
    assert await scaler.determine_scaling_action(low) is ScalingAction.SCALE_DOWN


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (
            lambda: ScoreSettings(scale_up_threshold=0.3, scale_down_threshold=0.5),
            "scale_down_threshold",
        ),
        (lambda: ScoreSettings(scale_up_threshold=1.5), "scale_up_threshold"),
        (lambda: ScoreSettings({"cpu": CPUMetric(weight=0.5)}), "metrics"),
        (lambda: CPUMetric(weight=2.0), "cpu.weight"),
        (lambda: QueueMetric(full=0), "queue_depth.full"),
    ],
)
def test_bad_score_settings_name_the_field(build: Any, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build()
    assert err.value.field == field


def test_custom_weights_that_sum_to_one() -> None:
    scaler = MultiDimensionalScaler(
        {"cpu": CPUMetric(weight=0.5), "queue_depth": QueueMetric(weight=0.5, full=4)}
    )
    assert scaler.score({"cpu": 1.0, "queue_depth": 4.0}).action is ScalingAction.SCALE_UP
