"""The oracle: a policy that knows the trace's future (the limit, not a real autoscaler).

At every decision (each ``interval`` seconds) it asks for as many replicas as the peak
number of requests that would be in service at once — every request served the moment it
arrives — over ``[now, now + startup_time + look_ahead]``: replicas asked for now are ready
by the time that demand comes, and none is removed while a request it must serve is still
ahead within a start-up time. It never queues, except above ``max_replicas``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.ndimage import maximum_filter1d

from ..errors import ConfigError
from ..scaling._types import (
    ScalingContext,
    ScalingDecision,
    check_positive,
    check_replica_bounds,
    clamp,
)
from ._traces import Trace

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


def busy_per_second(trace: Trace) -> FloatArray:
    """The most requests in service at once in each second, each served on arrival."""
    if trace.service_times is None:
        raise ConfigError("trace", f"{trace.name} has no service times")
    start = np.floor(trace.times).astype(np.int64)
    stop = np.maximum(start + 1, np.ceil(trace.times + trace.service_times).astype(np.int64))
    n = int(stop.max()) + 1 if len(stop) else 1
    diff = np.zeros(n + 1)
    np.add.at(diff, start, 1.0)
    np.add.at(diff, stop, -1.0)
    return np.cumsum(diff)[:n]


@dataclass(frozen=True, slots=True)
class OraclePolicy:
    """See the module docstring. ``demand`` is :func:`busy_per_second` of the trace."""

    demand: FloatArray
    startup_time: float = 120.0
    look_ahead: float = 60.0
    concurrency: int = 1
    min_replicas: int = 1
    max_replicas: int = 20
    decision_interval: float = 15.0
    name: str = "oracle"
    _peak: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_replica_bounds(self.min_replicas, self.max_replicas)
        check_positive("startup_time", self.startup_time, allow_zero=True)
        check_positive("look_ahead", self.look_ahead, allow_zero=True)
        check_positive("decision_interval", self.decision_interval)
        check_positive("concurrency", self.concurrency)
        width = math.ceil(self.startup_time + self.look_ahead) + 1
        # forward window [i, i + width): maximum_filter1d centres it, so shift the origin
        peak = maximum_filter1d(self.demand, size=width, origin=-(width // 2), mode="constant")
        object.__setattr__(self, "_peak", peak)

    @staticmethod
    def for_trace(trace: Trace, **kwargs: Any) -> OraclePolicy:
        return OraclePolicy(busy_per_second(trace), **kwargs)

    @property
    def interval(self) -> float:
        return self.decision_interval

    def initial_state(self) -> None:
        return None

    def parameters(self) -> dict[str, Any]:
        return {
            "policy": "oracle: knows every future arrival and its service time",
            "look_ahead_s": self.look_ahead,
            "window_s": self.startup_time + self.look_ahead,
            "decision_interval": self.decision_interval,
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
        }

    def decide(self, ctx: ScalingContext, state: None) -> tuple[ScalingDecision, None]:
        i = int(ctx.now)
        peak = float(self._peak[i]) if 0 <= i < len(self._peak) else 0.0
        want = clamp(math.ceil(peak / self.concurrency), self.min_replicas, self.max_replicas)
        return (
            ScalingDecision.relative(
                want, ctx.target_replicas, f"peak demand {peak:.0f} within the look-ahead"
            ),
            None,
        )
