"""``ScalingLoop``: the live driver. Every ``policy.interval`` it takes a snapshot (the
tracker's load — or ``load_history(now)``, e.g. :func:`load_from_store` on the monitoring
history —, the backend's replicas, the measured start-up time), asks the policy — the
same pure function the simulator calls — in a worker thread (a refit of the forecast never
blocks the request path), and has the controller carry out the target.

Each step is kept (:attr:`history`, for ``/admin/scaling``) and exported as metrics:
``prsm_scaling_decision_target``, ``prsm_scaling_forecast_rps`` (point and upper),
``prsm_scaling_score``, ``prsm_scaling_ready_replicas`` and the controller's action counters.
Start-up time is measured: from a scale-up until the backend reports the replicas ready,
averaged (EWMA) into the ``startup_time`` the next snapshots carry.

With ``replay_span`` each step's inputs are also kept as a :class:`~._replay.StepRecord`
(those of the last ``replay_span`` seconds, :attr:`records`), which a leader serves to its
standbys; a new leader handed them (:meth:`carry_over`) replays them through its policy
before its first decision (:meth:`resume`: in chunks, in a worker thread), so it decides as
the old leader would have.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._awaiting import stop_task
from ..clock import Clock, SystemClock
from ..errors import ScalingError
from ..monitoring._registry import MetricsRegistry
from ._controller import DEFAULT_DEPLOYMENT, ActionReport, ReplicaStatus, ScalingController
from ._replay import StepRecord, spaced
from ._resume import REPLAY_BUDGET, Replayer
from ._score import ScoreSettings, score_signals, signal_readings
from ._session_carry import SessionCarry
from ._sessions import SessionSnapshot
from ._tracker import LoadTracker
from ._types import (
    LoadSeries,
    ScalingContext,
    ScalingDecision,
    ScalingPolicy,
    ScalingSignals,
    check_positive,
)
from ._warm import Carried, carry

log = logging.getLogger("prsm.performance.scaling")


@dataclass(frozen=True, slots=True)
class LoopStep:
    """One iteration: when, what it saw, what the policy decided, what was done."""

    at: float
    context: ScalingContext
    status: ReplicaStatus
    decision: ScalingDecision
    reports: list[ActionReport]
    score: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        ctx = self.context
        details = {
            k: (round(v, 6) if isinstance(v, float) else v)
            for k, v in self.decision.details.items()
            if isinstance(v, (int, float, str, bool)) or v is None
        }
        return {
            "at": self.at,
            "ready": self.status.ready,
            "starting": self.status.starting,
            "draining": self.status.draining,
            "arrivals": ctx.arrivals,
            "in_flight": ctx.in_flight,
            "queued": ctx.queued,
            "mean_ongoing": round(ctx.mean_ongoing, 4),
            "service_time": ctx.service_time,
            "startup_time": ctx.startup_time,
            "open_sessions": (
                len(ctx.sessions.open) if isinstance(ctx.sessions, SessionSnapshot) else None
            ),
            "target": self.decision.target,
            "action": self.decision.action.value,
            "reason": self.decision.reason,
            "details": details,
            "score": self.score,
            "actions": [r.as_dict() for r in self.reports],
        }


class ScalingLoop:
    """See the module docstring. ``signals`` returns the multi-signal reading (cpu, memory,
    latency, errors; the tracker fills in what it knows)."""

    def __init__(
        self,
        policy: ScalingPolicy[Any],
        controller: ScalingController,
        tracker: LoadTracker,
        *,
        deployment: str = DEFAULT_DEPLOYMENT,
        concurrency: int = 1,
        startup_time: float = 60.0,
        signals: Callable[[], ScalingSignals | None] | None = None,
        load_history: Callable[[float], LoadSeries] | None = None,
        score: ScoreSettings | None = None,
        clock: Clock | None = None,
        metrics: MetricsRegistry | None = None,
        history: int = 500,
        replay_span: float = 0.0,
        max_replicas: int | None = None,
        replay_budget: float = REPLAY_BUDGET,
    ) -> None:
        check_positive("startup_time", startup_time, allow_zero=True)
        check_positive("replay_span", replay_span, allow_zero=True)
        check_positive("concurrency", concurrency)
        check_positive("replay_budget", replay_budget)
        self.policy = policy
        self.controller = controller
        self.tracker = tracker
        self.deployment = deployment
        self.concurrency = concurrency
        self.startup_time = startup_time
        self.signals = signals
        self.load_history = load_history
        self.score_settings = score or ScoreSettings()
        self.clock = clock or SystemClock()
        self.state: Any = policy.initial_state()
        self.history: deque[LoopStep] = deque(maxlen=history)
        #: a new leader's carried history, and when it took over (:meth:`carry_over`)
        self.carried: tuple[Carried, float] | None = None
        #: the inputs of the decisions of the last ``replay_span`` seconds (a leader serves
        #: them; carried ones first after a take-over)
        self.replay_span = replay_span
        self.records: deque[StepRecord] = deque()
        self._to_replay: tuple[StepRecord, ...] = ()
        self._task: asyncio.Task[None] | None = None
        self._pending_up: tuple[float, int] | None = None  # (asked at, target) of a scale-up
        #: called with each step once it is kept (e.g. to tell other processes)
        self.listeners: list[Callable[[LoopStep], None]] = []
        m = metrics or MetricsRegistry()
        labels = ["deployment"]
        self._m_target = m.gauge("scaling_decision_target", "Replicas the policy wants", labels)
        self._m_ready = m.gauge("scaling_ready_replicas", "Replicas serving", labels)
        self._m_forecast = m.gauge(
            "scaling_forecast_rps", "LoadForecast request rate", ["deployment", "kind"]
        )
        self._m_score = m.gauge("scaling_score", "Multi-signal score (0-1)", labels)
        self._m_startup = m.gauge("scaling_startup_seconds", "Measured replica start-up", labels)
        self._m_errors = m.counter("scaling_loop_errors", "Scaling steps that failed", labels)
        self.replayer = Replayer(policy, deployment, m, span=replay_span, concurrency=concurrency,
                                 max_replicas=max_replicas, budget=replay_budget,
                                 session_window=tracker.sessions.window)  # fmt: skip
        self.session_carry = SessionCarry(deployment, m)

    @property
    def replayed(self) -> dict[str, Any] | None:
        """The last replay: decisions replayed, from when, seconds it took (``None``: none)."""
        return self.replayer.replayed

    # -- one step --------------------------------------------------------------------------
    def _measure_startup(self, now: float, status: ReplicaStatus) -> None:
        if self._pending_up is None:
            return
        asked, target = self._pending_up
        if status.ready >= target:
            took = now - asked
            if took < 0:  # asked "after" now: a restored record's, or the clock went back
                log.warning("a start-up measured as %.3f s is ignored", took)
                self._pending_up = None
                return
            self.startup_time = 0.7 * self.startup_time + 0.3 * took
            self._m_startup.labels(self.deployment).set(self.startup_time)
            self._pending_up = None
        elif status.desired < target:
            self._pending_up = None  # scaled down meanwhile: nothing to measure

    def context(
        self, status: ReplicaStatus, load: LoadSeries | None = None
    ) -> tuple[ScalingContext, dict[str, Any] | None]:
        now = self.clock.time()
        window = self.tracker.take_window()
        outside = self.signals() if self.signals is not None else None
        ready = max(status.ready, 0)
        own = ScalingSignals(
            cpu=window.mean_busy / (ready * self.concurrency) if ready else None,
            latency=window.mean_wait,
            queue_depth=self.tracker.queued / max(1, ready),
            error_rate=window.error_rate,
        )
        signals = own if outside is None else ScalingSignals(
            cpu=_first(outside.cpu, own.cpu),
            memory=outside.memory,
            latency=_first(outside.latency, own.latency),
            queue_depth=_first(outside.queue_depth, own.queue_depth),
            error_rate=_first(outside.error_rate, own.error_rate),
        )  # fmt: skip
        ctx = ScalingContext(
            now=now,
            ready_replicas=status.ready,
            starting_replicas=status.starting,
            target_replicas=status.desired,
            in_flight=self.tracker.in_flight,
            queued=self.tracker.queued,
            mean_ongoing=window.mean_ongoing,
            mean_busy=window.mean_busy,
            interval=window.interval,
            arrivals=window.arrivals,
            concurrency=self.concurrency,
            service_time=self.service_time(),
            startup_time=self.startup_time,
            load=load if load is not None else self.load(),
            signals=signals,
            sessions=self.tracker.session_snapshot(),
        )
        score = score_signals(signal_readings(signals, self.score_settings), self.score_settings)
        return ctx, score.as_dict()

    def carry_over(self, carried: Carried | None, since: float) -> None:
        """Read ``carried`` (the last leader's history, :mod:`._warm`) for the steps before
        ``since`` from now on, its start-up time and its users' sessions (the tracker takes
        them over, :mod:`._session_carry`); ``None``: only this tracker's. Its decisions'
        records (those before ``since``) are replayed before the next step
        (:meth:`resume`) and served on as this loop's (an earlier term's are dropped)."""
        self.carried = (carried, since) if carried is not None else None
        if carried is not None and carried.startup_time is not None:
            self.startup_time = carried.startup_time
        steps = tuple(r for r in carried.steps if r.now < since) if carried is not None else ()
        if carried is not None:
            self.replayer.drop_late(len(carried.steps) - len(steps), since)
            self.replayer.sessions_carried = self.session_carry.restore(
                self.tracker.sessions, carried.sessions, since
            )
        steps, close = spaced(steps, self.policy.interval)  # as a standby would drop them
        if close:
            self.replayer.refuse("too_close", close)
            log.warning("%d carried decision record(s) are less than half an interval before "
                        "the next: not replayed nor served on", close)  # fmt: skip
        self.records = deque(steps)
        self._to_replay = steps if self.replay_span > 0 else ()
        self._pending_up = None

    async def resume(self) -> None:
        """Replay the carried records through the policy from a fresh state, from the first
        decision at which the old leader refitted (:class:`~._resume.Replayer`), so that
        :attr:`state` is the one the old leader held. A replay that fails or is refused is
        logged and counted, and the state set before (:meth:`carry_over`'s caller's) is kept."""
        records, self._to_replay = self._to_replay, ()
        resumed = await self.replayer.run(records, self.load())
        if resumed is not None:
            self.state = resumed.state
            self._pending_up = resumed.pending_up

    def load(self) -> LoadSeries:
        """The arrivals per step the policy reads: the tracker's, after any carried ones."""
        own = self.tracker.load()
        if self.carried is None:
            return own
        carried, since = self.carried
        return carry(carried.load, own, since)

    def service_time(self) -> float | None:
        """The measured mean service time, else the carried one (``None``: neither)."""
        measured = self.tracker.service_time
        if measured is None and self.carried is not None:
            return self.carried[0].service_time
        return measured

    async def step(self) -> LoopStep:
        """Snapshot → decision → action; kept in :attr:`history` and returned (after any
        replay :meth:`carry_over` left pending)."""
        if self._to_replay:
            await self.resume()
        status = await self.controller.status(self.deployment)
        now = self.clock.time()
        self._measure_startup(now, status)
        load = None
        if self.load_history is not None:  # the history store blocks: off the loop
            load = await asyncio.to_thread(self.load_history, now)
        ctx, score = self.context(status, load)
        decision, self.state = await asyncio.to_thread(self.policy.decide, ctx, self.state)
        plan = self.controller.plan(
            {self.deployment: status.desired}, {self.deployment: decision.target}, decision.reason
        )
        reports = await self.controller.execute(plan)
        for r in reports:
            if r.ok and r.action.change > 0:
                self._pending_up = (now, r.action.target)
        step = LoopStep(now, ctx, status, decision, reports, score)
        self.history.append(step)
        if self.replay_span > 0:
            if self.records and self.records[-1].now >= ctx.now:  # the wall clock went back
                log.warning("the clock went back %.3f s: the %d decision record(s) kept for a "
                            "new leader's replay are dropped", self.records[-1].now - ctx.now,
                            len(self.records))  # fmt: skip
                self.records.clear()
            elif self.records and ctx.now - self.records[-1].now < self.policy.interval / 2:
                # the last leader's, made just before this take-over (or a step asked for out
                # of turn): a standby drops records closer than that (:mod:`._warm`)
                self.replayer.refuse("too_close", 1)
                log.warning("the decision record of %.3f is %.3f s before this decision's: it "
                            "is not served on (half an interval apart at least)",
                            self.records[-1].now, ctx.now - self.records[-1].now)  # fmt: skip
                self.records.pop()
            self.records.append(StepRecord.of(ctx, decision, self._pending_up))
            while self.records and self.records[0].now < ctx.now - self.replay_span:
                self.records.popleft()
        self._export(step)
        for listener in self.listeners:
            listener(step)
        return step

    def _export(self, step: LoopStep) -> None:
        d = self.deployment
        self._m_target.labels(d).set(step.decision.target)
        self._m_ready.labels(d).set(step.status.ready)
        if step.score is not None:
            self._m_score.labels(d).set(step.score["score"])
        fc = step.decision.details.get("forecast")
        if isinstance(fc, float):
            self._m_forecast.labels(d, "point").set(fc)
            up = step.decision.details.get("forecast_upper", fc)
            self._m_forecast.labels(d, "upper").set(float(up))

    # -- the loop --------------------------------------------------------------------------
    async def run(self) -> None:
        """Step every ``policy.interval`` seconds until cancelled; a failed step is logged,
        counted and the loop goes on. The first step comes no sooner than half an interval
        after the last decision record kept (a new leader's: the last leader's last): one
        closer would replace that record, whose arrivals and forecast the replay read, and a
        later leader's rebuild of the session floor's errors would lack them."""
        if self.records:  # (at most half an interval: the wall clock may have gone back)
            half = self.policy.interval / 2
            wait = min(half, self.records[-1].now + half - self.clock.time())
            if wait > 0:
                await self.clock.sleep(wait)
        while True:
            try:
                await self.step()
            except (ScalingError, OSError, TimeoutError) as exc:
                self._m_errors.labels(self.deployment).inc()
                log.error("scaling step for %s failed: %s", self.deployment, exc)
            await self.clock.sleep(self.policy.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"scaling loop {self.deployment}")

    async def close(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)

    def snapshot(self, last: int = 50) -> dict[str, Any]:
        """What ``/admin/scaling`` shows: the policy and its parameters, the last steps."""
        return {
            "deployment": self.deployment,
            "policy": self.policy.name,
            "parameters": _plain(self.policy.parameters()),
            "interval": self.policy.interval,
            "startup_time": self.startup_time,
            "running": self._task is not None,
            "replayed": self.replayed,
            "steps": [s.as_dict() for s in list(self.history)[-last:]],
            "actions": [r.as_dict() for r in list(self.controller.history)[-last:]],
        }


def _first(a: float | None, b: float | None) -> float | None:
    return a if a is not None else b


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return repr(value)
