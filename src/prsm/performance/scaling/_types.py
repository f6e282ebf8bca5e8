"""What every scaling policy sees and returns: a context snapshot in, a decision and new state out.

In the style of Ray Serve's ``autoscaling_policy.py``: a policy is a pure function of a
:class:`ScalingContext` (a snapshot of the replicas, the load and its history, taken by a
driver at ``ctx.now``) and its own previous state, returning a :class:`ScalingDecision` and
its new state. It does no I/O and reads no clock, so the live loop
(:class:`~prsm.performance.scaling.ScalingLoop`) and the virtual-time simulator
(:mod:`prsm.performance.sim`) run the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from ..errors import ConfigError

if TYPE_CHECKING:
    from ._sessions import SessionReading, SessionSnapshot

S = TypeVar("S")


class ScalingAction(StrEnum):
    """The post's three answers: add replicas, remove them, or keep what runs."""

    SCALE_UP = "scale_up"
    SCALE_DOWN = "scale_down"
    MAINTAIN = "maintain"


@dataclass(frozen=True, slots=True)
class LoadSeries:
    """A regular series of request counts: ``values[i]`` requests arrived in
    ``[start + i·step, start + (i + 1)·step)``. Only completed steps are included."""

    start: float
    step: float
    values: np.ndarray[Any, np.dtype[np.float64]]

    def __post_init__(self) -> None:
        if not self.step > 0:
            raise ConfigError("step", f"must be > 0 seconds, got {self.step!r}")
        if self.values.ndim != 1:
            raise ConfigError("values", f"must be one-dimensional, got shape {self.values.shape}")

    @property
    def end(self) -> float:
        """The end of the last completed step."""
        return self.start + len(self.values) * self.step

    def __len__(self) -> int:
        return len(self.values)

    def rate(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Requests per second of each step."""
        return self.values / self.step

    def resample(self, step: float) -> LoadSeries:
        """Sum into steps of ``step`` seconds (a whole multiple of this step); a last
        partial step is dropped."""
        k = round(step / self.step)
        if k < 1 or abs(k * self.step - step) > 1e-9 * step:
            raise ConfigError("step", f"{step} is not a whole multiple of {self.step}")
        if k == 1:
            return self
        n = len(self.values) // k
        summed = self.values[: n * k].reshape(n, k).sum(axis=1)
        return LoadSeries(self.start, step, summed)

    def window(self, start: float, end: float) -> LoadSeries:
        """The steps that lie in ``[start, end)``."""
        i = max(0, int(np.ceil((start - self.start) / self.step - 1e-9)))
        j = min(len(self.values), int(np.floor((end - self.start) / self.step + 1e-9)))
        j = max(i, j)
        return LoadSeries(self.start + i * self.step, self.step, self.values[i:j])


@dataclass(frozen=True, slots=True)
class ScalingSignals:
    """The multi-signal reading of the post: cpu and memory utilisation (0–1), latency
    (seconds, compared with the SLO), queue depth (requests waiting per replica) and the
    error rate (0–1). ``None`` where the driver has no reading."""

    cpu: float | None = None
    memory: float | None = None
    latency: float | None = None
    queue_depth: float | None = None
    error_rate: float | None = None


@dataclass(frozen=True, slots=True)
class ScalingContext:
    """A snapshot of one scaled deployment, taken by a driver at ``now`` (seconds).

    ``ready_replicas`` serve; ``starting_replicas`` are booting; ``target_replicas`` is the
    last target (ready + starting, draining ones excluded). ``in_flight`` requests are being
    served, ``queued`` wait for a slot. ``mean_ongoing`` and ``mean_busy`` are the
    time-averages of in-flight + queued and of in-flight since the previous decision
    (``interval`` seconds ago), ``arrivals`` the requests that arrived in that time.
    ``concurrency`` is the requests one replica serves at once; ``service_time`` the mean
    service time of recent requests (``None`` before any finished); ``startup_time`` the
    measured time from asking for a replica to its first request. ``load`` is the arrival
    history (completed steps), ``signals`` the multi-signal reading where there is one,
    ``sessions`` the users' open sessions where requests carry a user (a replayed decision's:
    what the live one read of them, a :class:`~._sessions.SessionReading`).
    """

    now: float
    ready_replicas: int
    starting_replicas: int = 0
    target_replicas: int = 0
    in_flight: int = 0
    queued: int = 0
    mean_ongoing: float = 0.0
    mean_busy: float = 0.0
    interval: float = 0.0
    arrivals: int = 0
    concurrency: int = 1
    service_time: float | None = None
    startup_time: float = 0.0
    load: LoadSeries | None = None
    signals: ScalingSignals | None = None
    sessions: SessionSnapshot | SessionReading | None = None

    @property
    def ongoing(self) -> int:
        """Requests in the system right now: served and waiting."""
        return self.in_flight + self.queued


@dataclass(frozen=True, slots=True)
class ScalingDecision:
    """A policy's answer: the replicas it wants (``target``), the action that is relative to
    the current target, a one-line ``reason``, and ``details`` (forecasts, scores, windows)
    for metrics, history and ``/admin/scaling``."""

    target: int
    action: ScalingAction
    reason: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    @staticmethod
    def relative(target: int, current: int, reason: str = "", **details: Any) -> ScalingDecision:
        """A decision whose action compares ``target`` with ``current``."""
        if target > current:
            action = ScalingAction.SCALE_UP
        elif target < current:
            action = ScalingAction.SCALE_DOWN
        else:
            action = ScalingAction.MAINTAIN
        return ScalingDecision(target, action, reason, details)


class ScalingPolicy(Protocol[S]):
    """A pure policy: parameters fixed at construction, ``decide`` a function of the snapshot
    and the previous state. ``interval`` is how often a driver asks it (seconds)."""

    @property
    def name(self) -> str: ...

    @property
    def interval(self) -> float: ...

    def initial_state(self) -> S: ...

    def decide(self, ctx: ScalingContext, state: S) -> tuple[ScalingDecision, S]: ...

    def parameters(self) -> dict[str, Any]:
        """Every parameter that shapes its decisions (for benchmark output and the admin API)."""
        ...


def clamp(value: int, low: int, high: int) -> int:
    """``value`` bounded to ``[low, high]``."""
    return max(low, min(high, value))


def check_replica_bounds(min_replicas: int, max_replicas: int) -> None:
    """A :class:`ConfigError` unless ``0 <= min_replicas <= max_replicas`` and
    ``max_replicas >= 1`` (whole numbers)."""
    check_whole("min_replicas", min_replicas, 0)
    check_whole("max_replicas", max_replicas, 1)
    if min_replicas > max_replicas:
        raise ConfigError("min_replicas", f"{min_replicas} is above max_replicas ({max_replicas})")


def check_whole(name: str, value: object, low: int) -> None:
    """A :class:`ConfigError` naming ``name`` unless ``value`` is a whole number >= ``low``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(name, f"must be a whole number >= {low}, got {value!r}")


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    """A :class:`ConfigError` naming ``name`` unless ``value`` is a positive number."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and (value >= 0 if allow_zero else value > 0) and np.isfinite(value):
        return
    bound = ">= 0" if allow_zero else "> 0"
    raise ConfigError(name, f"must be a number {bound}, got {value!r}")


class Scaler(Protocol):
    """What an orchestrator runs and shows of its scaler: a
    :class:`~prsm.performance.scaling.PredictiveScaler`, or a view of one that another
    process runs (``serve --workers N``: the serving parent scales the shared pool)."""

    def start(self) -> None: ...

    async def close(self) -> None: ...

    def snapshot(self, last: int = 50) -> dict[str, Any]: ...
