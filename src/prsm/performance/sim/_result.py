"""What a simulation produced: every request's queueing delay, the replicas over time, the
policy's decisions and forecasts, and the summary figures over a reporting window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..scaling._types import ScalingPolicy
    from ._engine import SimulationSettings
    from ._traces import Trace

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
Steps = tuple[list[float], list[float]]


def step_integral(times: FloatArray, values: FloatArray, edges: FloatArray) -> FloatArray:
    """∫ of a piecewise-constant series (``values[i]`` from ``times[i]`` on) over each
    interval ``[edges[k], edges[k + 1])``; zero before the first change."""
    if len(times) == 0:
        return np.zeros(len(edges) - 1)
    seg = np.diff(np.append(times, max(times[-1], edges[-1])))
    cum = np.concatenate(([0.0], np.cumsum(values * seg)))

    def at(x: FloatArray) -> FloatArray:
        i = np.searchsorted(times, x, side="right") - 1
        inside = i >= 0
        j = np.clip(i, 0, None)
        out = cum[j] + values[j] * (x - times[j])
        return np.where(inside, out, 0.0)

    f = at(edges)
    return np.diff(f)


def step_value(times: FloatArray, values: FloatArray, at: FloatArray) -> FloatArray:
    """The series' value at each of ``at`` (the first value before its first change)."""
    i = np.clip(np.searchsorted(times, at, side="right") - 1, 0, None)
    return values[i]


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """One simulated run. Times are seconds from the trace's start."""

    policy: str
    parameters: dict[str, Any]
    trace: str
    slo: float
    t0: float
    t_end: float
    arrivals: FloatArray
    service: FloatArray
    waits: FloatArray
    alive: tuple[FloatArray, FloatArray]
    ready: tuple[FloatArray, FloatArray]
    targets: tuple[FloatArray, FloatArray]
    decisions: list[tuple[float, int, str]]
    forecasts: FloatArray  # rows (time, forecast req/s, upper req/s)

    @staticmethod
    def build(
        *,
        policy: ScalingPolicy[Any],
        settings: SimulationSettings,
        trace: Trace,
        t0: float,
        t_end: float,
        arrivals: FloatArray,
        service: FloatArray,
        waits: FloatArray,
        alive: Steps,
        ready: Steps,
        targets: Steps,
        decisions: list[tuple[float, int, str]],
        forecasts: list[tuple[float, float, float]],
        minutes: int,
    ) -> SimulationResult:
        # a request still waiting at the end waited at least until the end
        censored = np.where(np.isnan(waits), t_end - arrivals, waits)

        def arr(x: Steps) -> tuple[FloatArray, FloatArray]:
            return np.asarray(x[0], dtype=np.float64), np.asarray(x[1], dtype=np.float64)

        return SimulationResult(
            policy=policy.name,
            parameters=policy.parameters(),
            trace=trace.name,
            slo=settings.slo,
            t0=t0,
            t_end=t_end,
            arrivals=arrivals,
            service=service,
            waits=censored,
            alive=arr(alive),
            ready=arr(ready),
            targets=arr(targets),
            decisions=decisions,
            forecasts=np.asarray(forecasts, dtype=np.float64).reshape(-1, 3),
        )

    def _span(self, start: float | None, end: float | None) -> tuple[float, float]:
        a = self.t0 if start is None else max(start, self.t0)
        b = self.t_end if end is None else min(end, self.t_end)
        return a, max(a, b)

    def minutes(
        self, start: float | None = None, end: float | None = None, step: float = 60.0
    ) -> dict[str, FloatArray]:
        """Per ``step`` (default a minute) over ``[start, end)``: ``time`` (step start),
        ``arrivals``, ``replicas`` and ``ready`` (time-averages), ``target`` (at the step's
        end), ``max_wait`` (of requests that arrived in it; 0 if none), ``violations``
        (requests that waited longer than the SLO)."""
        a, b = self._span(start, end)
        first = np.floor(a / step) * step
        edges = np.arange(first, b + step, step)
        if len(edges) < 2:
            edges = np.array([first, first + step])
        width = np.diff(edges)
        lo = np.maximum(edges[:-1], a)
        hi = np.minimum(edges[1:], b)
        covered = np.clip(hi - lo, 0, None)
        k = len(edges) - 1
        idx = ((self.arrivals - first) // step).astype(np.int64)
        inside = (self.arrivals >= a) & (self.arrivals < b)
        idx_in = idx[inside]
        w_in = self.waits[inside]
        arrivals = np.bincount(idx_in, minlength=k)[:k].astype(np.float64)
        violations = np.bincount(idx_in, weights=(w_in > self.slo).astype(np.float64), minlength=k)[
            :k
        ]
        max_wait = np.zeros(k)
        if len(idx_in):
            np.maximum.at(max_wait, idx_in, w_in)
        rep = step_integral(*self.alive, np.concatenate(([lo[0]], hi)))
        rdy = step_integral(*self.ready, np.concatenate(([lo[0]], hi)))
        # integrals over [lo_k, hi_k]: hi_k == lo_{k+1}, so consecutive differences work
        denom = np.where(covered > 0, covered, width)
        return {
            "time": edges[:-1],
            "arrivals": arrivals,
            "replicas": rep / denom,
            "ready": rdy / denom,
            "target": step_value(*self.targets, np.minimum(edges[1:], b)),
            "max_wait": max_wait,
            "violations": violations,
        }

    def replica_hours(self, start: float | None = None, end: float | None = None) -> float:
        a, b = self._span(start, end)
        return float(step_integral(*self.alive, np.array([a, b]))[0]) / 3600.0

    def summary(self, start: float | None = None, end: float | None = None) -> dict[str, Any]:
        """The figures over ``[start, end)``: replica-hours, SLO-violation minutes (minutes in
        which any arriving request waited longer than the SLO), requests and how many broke
        the SLO, queueing-delay percentiles, mean replicas and scaling actions."""
        a, b = self._span(start, end)
        per = self.minutes(a, b)
        inside = (self.arrivals >= a) & (self.arrivals < b)
        w = self.waits[inside]
        acts = [d for d in self.decisions if a <= d[0] < b]
        hours = self.replica_hours(a, b)
        return {
            "policy": self.policy,
            "replica_hours": round(hours, 2),
            "violation_minutes": int((per["violations"] > 0).sum()),
            "requests": int(inside.sum()),
            "slo_breaches": int((w > self.slo).sum()),
            "p50_wait_s": round(float(np.percentile(w, 50)), 3) if len(w) else 0.0,
            "p99_wait_s": round(float(np.percentile(w, 99)), 3) if len(w) else 0.0,
            "max_wait_s": round(float(w.max()), 3) if len(w) else 0.0,
            "mean_replicas": round(hours * 3600.0 / (b - a), 3) if b > a else 0.0,
            "scaling_actions": len(acts),
            "hours": round((b - a) / 3600.0, 2),
        }
