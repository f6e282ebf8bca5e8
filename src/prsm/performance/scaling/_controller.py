"""``ScalingController``: plan the change from the current replicas to a target, and carry it
out through a :class:`ScalingBackend`, retrying a failed action and reporting every attempt.

Planning is pure (:meth:`ScalingController.plan`): per deployment, one
:class:`PlannedAction` (scale up, scale down or maintain) with its target bounded to
``[min_replicas, max_replicas]`` — a plan never takes a deployment below ``min_replicas``.
Execution asks the backend for the target; a backend that fails (:class:`ScalingError`, an
``OSError`` or a time-out) is asked again after ``retry_backoff`` seconds, doubling, up to
``retries`` more times. Each outcome is an :class:`ActionReport` (kept in :attr:`history`,
counted in metrics) — a failed action is reported, never silently dropped.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from ..clock import Clock, SystemClock
from ..errors import ConfigError, ScalingError
from ..monitoring._registry import MetricsRegistry
from ._types import ScalingAction, check_positive, check_replica_bounds, check_whole, clamp

log = logging.getLogger("prsm.performance.scaling")

DEFAULT_DEPLOYMENT = "default"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """A deployment's replicas: ``ready`` serve, ``starting`` boot, ``draining`` finish their
    last requests before they stop. ``target`` is what was last asked for."""

    ready: int
    starting: int = 0
    draining: int = 0
    target: int | None = None
    replicas: tuple[str, ...] = ()

    @property
    def desired(self) -> int:
        """The replicas asked for: ``target`` where known, else ready + starting."""
        return self.target if self.target is not None else self.ready + self.starting

    def as_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "starting": self.starting,
            "draining": self.draining,
            "target": self.desired,
            "replicas": list(self.replicas),
        }


@runtime_checkable
class ScalingBackend(Protocol):
    """Where replicas live: local processes, Ray actors, a Kubernetes Deployment…"""

    @property
    def name(self) -> str: ...

    async def status(self) -> ReplicaStatus:
        """The replicas now."""
        ...

    async def scale_to(self, replicas: int) -> ReplicaStatus:
        """Ask for ``replicas`` (new ones start; removed ones drain first); raise
        :class:`~prsm.performance.errors.ScalingError` when the request fails."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """One step of a plan: ``deployment`` from ``current`` to ``target`` replicas."""

    deployment: str
    action: ScalingAction
    current: int
    target: int
    reason: str = ""

    @property
    def change(self) -> int:
        return self.target - self.current

    def as_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "action": self.action.value,
            "current": self.current,
            "target": self.target,
            "change": self.change,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class ActionReport:
    """How an action went: ``ok``, the attempts it took, the error of the last failure, and
    the backend's status afterwards (``None`` if it never answered)."""

    action: PlannedAction
    ok: bool
    attempts: int
    error: str | None = None
    status: ReplicaStatus | None = None
    at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.action.as_dict(),
            "ok": self.ok,
            "attempts": self.attempts,
            "error": self.error,
            "status": self.status.as_dict() if self.status is not None else None,
            "at": self.at,
        }


Resources = int | ReplicaStatus | Mapping[str, int | ReplicaStatus]


def _counts(resources: Resources, what: str) -> dict[str, int]:
    if isinstance(resources, bool):
        raise ConfigError(what, f"expected replicas, got {resources!r}")
    if isinstance(resources, int):
        return {DEFAULT_DEPLOYMENT: resources}
    if isinstance(resources, ReplicaStatus):
        return {DEFAULT_DEPLOYMENT: resources.desired}
    if isinstance(resources, Mapping):
        out = {}
        for k, v in resources.items():
            n = v.desired if isinstance(v, ReplicaStatus) else v
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ConfigError(f"{what}[{k}]", f"must be a whole number >= 0, got {v!r}")
            out[str(k)] = n
        return out
    raise ConfigError(
        what, f"expected replicas (an int, a ReplicaStatus or a mapping), got {resources!r}"
    )


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    """Bounds every target; ``retries`` more attempts after a failure, ``retry_backoff``
    seconds before the first (doubling); ``history`` reports kept."""

    min_replicas: int = 1
    max_replicas: int = 20
    retries: int = 3
    retry_backoff: float = 1.0
    history: int = 500

    def __post_init__(self) -> None:
        check_replica_bounds(self.min_replicas, self.max_replicas)
        check_whole("retries", self.retries, 0)
        check_positive("retry_backoff", self.retry_backoff, allow_zero=True)
        check_whole("history", self.history, 1)


class ScalingController:
    """See the module docstring. ``backend`` serves the default deployment; ``backends`` maps
    named deployments to theirs."""

    def __init__(
        self,
        backend: ScalingBackend | None = None,
        settings: ControllerSettings | None = None,
        *,
        backends: Mapping[str, ScalingBackend] | None = None,
        clock: Clock | None = None,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        self.settings = settings or ControllerSettings()
        self.backends: dict[str, ScalingBackend] = dict(backends or {})
        if backend is not None:
            self.backends[DEFAULT_DEPLOYMENT] = backend
        self.clock = clock or SystemClock()
        self.history: deque[ActionReport] = deque(maxlen=self.settings.history)
        m = metrics or MetricsRegistry()
        self._m_actions = m.counter(
            "scaling_actions", "Scaling actions carried out", ["deployment", "action", "outcome"]
        )
        self._m_retries = m.counter("scaling_retries", "Scaling attempts retried", ["deployment"])
        self._m_target = m.gauge("scaling_target_replicas", "Replicas asked for", ["deployment"])

    # -- planning (pure) -------------------------------------------------------------------
    def plan(
        self, current_resources: Resources, target_resources: Resources, reason: str = ""
    ) -> list[PlannedAction]:
        """One action per deployment in ``target_resources`` (an ``int`` means the default
        deployment), each target bounded to ``[min_replicas, max_replicas]``."""
        s = self.settings
        current = _counts(current_resources, "current_resources")
        target = _counts(target_resources, "target_resources")
        plan = []
        for name, want in target.items():
            have = current.get(name, 0)
            bounded = clamp(want, s.min_replicas, s.max_replicas)
            why = reason
            if bounded != want:
                why = (why + "; " if why else "") + (
                    f"bounded to [{s.min_replicas}, {s.max_replicas}] from {want}"
                )
            if bounded > have:
                action = ScalingAction.SCALE_UP
            elif bounded < have:
                action = ScalingAction.SCALE_DOWN
            else:
                action = ScalingAction.MAINTAIN
            plan.append(PlannedAction(name, action, have, bounded, why))
        return plan

    async def plan_scaling(
        self, current_resources: Resources, target_resources: Resources, reason: str = ""
    ) -> list[PlannedAction]:
        """The post's name for :meth:`plan` (awaitable, as the post calls it)."""
        return self.plan(current_resources, target_resources, reason)

    # -- execution -------------------------------------------------------------------------
    def backend(self, deployment: str) -> ScalingBackend:
        try:
            return self.backends[deployment]
        except KeyError:
            raise ConfigError(
                "deployment", f"no backend for {deployment!r}; have {sorted(self.backends)}"
            ) from None

    async def status(self, deployment: str = DEFAULT_DEPLOYMENT) -> ReplicaStatus:
        return await self.backend(deployment).status()

    async def execute(self, plan: list[PlannedAction]) -> list[ActionReport]:
        """Carry out every action that changes something; one report per action."""
        return [await self.execute_action(a) for a in plan]

    async def _retrying(
        self, deployment: str, what: str, call: Callable[[], Awaitable[T]]
    ) -> tuple[T | None, int, str | None]:
        """``call()`` until it succeeds, at most ``retries + 1`` times, backing off:
        (result or None, attempts, last error)."""
        s = self.settings
        delay = s.retry_backoff
        error: str | None = None
        for attempt in range(1, s.retries + 2):
            try:
                return await call(), attempt, None
            except (ScalingError, OSError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "%s for %s failed (attempt %d of %d): %s",
                    what, deployment, attempt, s.retries + 1, error,
                )  # fmt: skip
                if attempt <= s.retries:
                    self._m_retries.labels(deployment).inc()
                    await self.clock.sleep(delay)
                    delay *= 2
        return None, s.retries + 1, error

    async def execute_action(self, action: PlannedAction) -> ActionReport:
        if action.action is ScalingAction.MAINTAIN:
            return ActionReport(action, True, 0, at=self.clock.time())
        backend = self.backend(action.deployment)
        self._m_target.labels(action.deployment).set(action.target)
        status, attempts, error = await self._retrying(
            action.deployment,
            f"scaling to {action.target} on {backend.name}",
            lambda: backend.scale_to(action.target),
        )
        report = ActionReport(action, error is None, attempts, error, status, self.clock.time())
        if error is not None:
            log.error(
                "scaling %s to %d on %s failed after %d attempts: %s",
                action.deployment, action.target, backend.name, attempts, error,
            )  # fmt: skip
        self._record(report)
        return report

    def _record(self, report: ActionReport) -> None:
        outcome = "ok" if report.ok else "failed"
        self._m_actions.labels(report.action.deployment, report.action.action.value, outcome).inc()
        self.history.append(report)

    async def scale_to(
        self, target: int, *, deployment: str = DEFAULT_DEPLOYMENT, reason: str = ""
    ) -> ActionReport:
        """Plan and carry out one deployment's move to ``target`` replicas."""
        backend = self.backend(deployment)
        status, attempts, error = await self._retrying(
            deployment, f"reading replicas on {backend.name}", backend.status
        )
        if status is None:
            [action] = self.plan({deployment: target}, {deployment: target}, reason)
            report = ActionReport(action, False, attempts, error, None, self.clock.time())
            self._record(report)
            return report
        [action] = self.plan({deployment: status.desired}, {deployment: target}, reason)
        return await self.execute_action(action)

    async def close(self) -> None:
        for b in self.backends.values():
            await b.close()


@dataclass
class InMemoryBackend:
    """The in-library test double: replicas are numbers; a new one is ready ``startup_time``
    seconds (on ``clock``) after it is asked for; :meth:`fail_next` makes the next calls
    fail, as a real backend's outage would."""

    startup_time: float = 0.0
    clock: Clock = field(default_factory=SystemClock)
    initial: int = 1
    name: str = "memory"
    calls: list[int] = field(default_factory=list)
    _ready_at: list[float] = field(default_factory=list)
    _failures: int = 0

    def __post_init__(self) -> None:
        now = self.clock.monotonic()
        self._ready_at = [now] * self.initial

    def fail_next(self, calls: int) -> None:
        """Make the next ``calls`` calls of :meth:`scale_to` raise :class:`ScalingError`."""
        self._failures = calls

    async def status(self) -> ReplicaStatus:
        now = self.clock.monotonic()
        ready = sum(1 for t in self._ready_at if t <= now)
        ids = tuple(f"replica-{i}" for i in range(len(self._ready_at)))
        return ReplicaStatus(ready, len(self._ready_at) - ready, 0, len(self._ready_at), ids)

    async def scale_to(self, replicas: int) -> ReplicaStatus:
        self.calls.append(replicas)
        if self._failures > 0:
            self._failures -= 1
            raise ScalingError(self.name, f"refused scaling to {replicas} (injected failure)")
        now = self.clock.monotonic()
        if replicas > len(self._ready_at):
            self._ready_at += [now + self.startup_time] * (replicas - len(self._ready_at))
        else:
            # the starting ones go first, then the newest
            self._ready_at = sorted(self._ready_at)[:replicas]
        return await self.status()

    async def close(self) -> None:
        return None
