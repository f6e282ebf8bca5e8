"""Our policy: forecast the request rate, size for its upper quantile ahead of the start-up
time, never below what runs now, and scale down slowly.

Each decision (a pure function of the snapshot and the previous state):

1. **LoadForecast.** The arrival history (``ctx.load``) feeds a :class:`FittedPredictor`, refitted
   every ``predictor.refit_interval`` (inside the decision: the live loop runs decisions in a
   worker thread, off the request path); between fits, new steps move the models' states on.
2. **Predictive target.** The upper forecast (``predictor.quantile``) over the steps that
   replicas asked for now will serve — ``[now + startup, now + startup + lead]`` — gives the
   replicas for which a request waits longer than the SLO with probability at most
   ``wait_probability`` (Erlang C), each replica's capacity learned from the measured service
   time and its concurrency.
3. **Reactive target.** Every request being served now keeps its slot, and a
   ``reactive_queue_share`` of the queued ones gets one:
   ``ceil((in_flight + share · queued) / (concurrency · reactive_utilization))``. A
   replica asked for now is ready only after the start-up, when the busy replicas have
   mostly served today's queue; with a share below 1 those replica-hours go instead to
   the floors below that anticipate the next arrivals. With ``use_score`` and a
   multi-signal reading, the post's score adds its say: above its scale-up threshold one
   replica more than now, between the thresholds no fewer than now.
4. **Sessions** (with ``session_wait_probability`` and a ``ctx.sessions`` snapshot): the
   requests the users' open sessions and new sessions are expected to bring in the window a
   replica asked for now can serve (:class:`~prsm.performance.scaling.SessionSnapshot`) give
   a floor — the Erlang-C replicas for that rate, wait over the SLO with probability at
   most ``session_wait_probability`` — held for ``session_hold`` seconds. New sessions
   count at their rate over the last ``session_new_window`` seconds (``None``: the
   tracker's ``new_window``, an hour by default; a shorter one follows a rising load).
   With ``session_error_quantile``, that quantile of the forecast's own recent errors is
   added to it (:mod:`~prsm.performance.scaling._headroom`).
5. **Burst quantile** (with ``burst_quantile``): the ``burst_quantile`` of the requests that
   arrive in the next ``burst.window`` seconds, given the last minutes' and hour's arrivals
   (:class:`~prsm.performance.scaling.BurstQuantiles`, refitted with the predictor), plus
   the requests in the system now, each started within the SLO
   (:meth:`~prsm.performance.scaling.BurstQuantiles.replicas`), give a floor. It is applied
   after the scale-down window, so it also *holds* replicas that the upper quantile says
   will be needed within a start-up time (asymmetric scale-down); with
   ``burst_hold_only`` it only holds (never asks for more than run now).
5b. **Seasonal burst** (with ``seasonal_share``): ``seasonal_share`` × the largest burst of
   arrivals this time of day brought on the last days (:mod:`._seasonal`, settings
   ``seasonal``), on top of the requests in the system now, each started within the SLO,
   give a floor — provisioned a start-up time ahead of the time of day it covers; with
   ``seasonal_hold_only`` it only holds replicas that run (never asks for more).
6. The larger of the first two, within ``[min_replicas, max_replicas]`` and the replicas the cost
   limit per hour pays for; scale-up at once (stabilisation window ``scale_up_window``),
   scale-down to the highest target of the last ``scale_down_window`` seconds; each step at
   most ``max_step_up`` (or ``max_step_up_percent``) up and ``max_step_down`` down; never
   below the held session floor.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..errors import ConfigError
from ._burst import BurstQuantiles
from ._headroom import ForecastErrors
from ._predictive_floors import PredictiveFloors
from ._predictive_settings import PredictiveSettings
from ._predictor import FittedPredictor, LoadForecast, fit_predictor
from ._queueing import replicas_for
from ._score import ScoreSettings, score_signals, signal_readings
from ._types import LoadSeries, ScalingAction, ScalingContext, ScalingDecision, clamp

#: ``PredictiveSettings`` lives in :mod:`._predictive_settings`; importable from here too
__all__ = ["PredictivePolicy", "PredictiveSettings", "PredictiveState"]


@dataclass(frozen=True, slots=True)
class PredictiveState:
    """The fitted predictor, its models' states and the end (seconds) of the history they
    have read (``seen``: a time, not a count of steps, so that a sliding history — the
    tracker's full ring — still moves them on), the recent targets ``(time, replicas)``
    the stabilisation windows look at and the recent session floors ``(time, replicas)``
    and the session forecast's errors; the burst table (refitted with the predictor)."""

    fitted: FittedPredictor | None = None
    states: tuple[Any, ...] | None = None
    seen: float = -math.inf
    recommendations: tuple[tuple[float, int], ...] = ()
    fit_error: str | None = None
    last: LoadForecast | None = None
    session_floors: tuple[tuple[float, int], ...] = ()
    session_errors: ForecastErrors = field(default_factory=ForecastErrors)
    burst: BurstQuantiles | None = None
    burst_error: str | None = None
    arrivals: tuple[tuple[float, int], ...] = ()


@dataclass(frozen=True, slots=True)
class PredictivePolicy(PredictiveFloors):
    """See the module docstring (its floors: :class:`~._predictive_floors.PredictiveFloors`)."""

    settings: PredictiveSettings = field(default_factory=PredictiveSettings)
    name: str = "predictive"
    _score: ScoreSettings = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_score", self.settings.score_settings())

    @property
    def interval(self) -> float:
        return self.settings.interval

    def initial_state(self) -> PredictiveState:
        return PredictiveState()

    def refit(self, state: PredictiveState, *, forecast: bool, burst: bool) -> PredictiveState:
        """``state`` with the forecast (``forecast``) or the burst table (``burst``) dropped,
        so that the next decision fits it as a due refit would: a replay (:mod:`._replay`)
        refits where the old leader did."""
        if forecast:
            state = replace(state, fitted=None, states=None, seen=-math.inf, fit_error=None)
        if burst:
            state = replace(state, burst=None, burst_error=None)
        return state

    @property
    def memory(self) -> float:
        """How many seconds of past decisions a replay from a fresh state needs
        (:mod:`._replay`) for the forecast: one refit (at most ``refit_interval`` and a step
        after the last), then the longest window the state keeps, with two decisions' room
        (the floor's error headroom may need more: :meth:`replay_memory`)."""
        return self.settings.predictor.refit_interval + self.settings.predictor.step + self.warmup

    def replay_memory(self, window_end: float) -> float:
        """:attr:`memory`, or with the floor's error headroom on, if longer, the decisions
        that rebuild its errors (:meth:`prime`): ``session_error_span`` after those that
        settle the forecasts made before the first (``window_end``: the end of the session
        tracker's window, seconds after a decision), two decisions' room."""
        span = self.session_errors_span
        if span is None:
            return self.memory
        return max(self.memory, span + window_end + 2 * self.settings.interval)

    @property
    def warmup(self) -> float:
        """How long after its first decision a fresh state's decisions may differ from those
        of a state that decided before (its windows fill): the longest window, with two
        decisions' room. A replay compares its decisions with the records' from then on."""
        s = self.settings
        window = max(s.scale_up_window, s.scale_down_window, s.session_hold, s.burst.short)
        return window + 2 * s.interval

    @property
    def reads_sessions(self) -> bool:
        """Whether it reads the users' sessions (a replay matches with them carried)."""
        return self.settings.session_wait_probability is not None

    @property
    def session_errors_span(self) -> float | None:
        """How long the floor's error headroom keeps its errors (``None``: not on); a replay
        rebuilds them from the decisions before it starts (:meth:`prime`)."""
        s = self.settings
        on = s.session_wait_probability is not None and s.session_error_quantile is not None
        return s.session_error_span if on else None

    def prime(self, state: PredictiveState, ctx: ScalingContext) -> PredictiveState:
        """``state`` with the floor's forecast errors moved on by the decision at ``ctx``, as
        :meth:`decide` moves them (the rest as it was): a replay (:mod:`._replay`) rebuilds
        the errors from decisions older than it replays."""
        if self.session_errors_span is None or ctx.sessions is None:
            return state
        read = ctx.sessions.expected_rate(self.settings.session_new_window)
        return replace(state, session_errors=self._observe(ctx, state.session_errors, read))

    @property
    def refit_gap(self) -> float:
        """The least time between two refits (of the forecast, of the burst table) a leader's
        decisions can show: ``refit_interval``, less two steps (a refit is due when the
        history's end, which lags the decision by up to a step of each kind, has moved
        ``refit_interval`` on). A replay honours no closer ones (:func:`~._replay.refits`)."""
        p = self.settings.predictor
        return max(0.0, p.refit_interval - 2 * p.step)

    def parameters(self) -> dict[str, Any]:
        s = asdict(self.settings)
        return {"policy": "PRSM predictive (forecast + Erlang C + reactive floor)", **s}

    # -- forecasting -----------------------------------------------------------------------
    def forecast(
        self, load: LoadSeries | None, state: PredictiveState
    ) -> tuple[LoadForecast | None, PredictiveState]:
        """Refit when due, move the models on by the new steps, forecast the horizon (only
        when a step has completed since the last call; otherwise the last forecast)."""
        p = self.settings.predictor
        if load is None or len(load) == 0:
            return None, state
        k = round(p.step / load.step)
        if k < 1 or abs(k * load.step - p.step) > 1e-9 * p.step:
            raise ConfigError(
                "predictor.step",
                f"{p.step:g} s is not a whole multiple of the history's {load.step:g} s",
            )
        # Align the history to the predictor-step grid, so a sliding window's end moves in
        # whole predictor steps and the steps completed since ``seen`` are counted exactly.
        off = (-round(load.start / load.step)) % k
        if off:
            load = LoadSeries(load.start + off * load.step, load.step, load.values[off:])
        steps = len(load) // k
        end = load.start + steps * p.step
        fitted, states, seen, error = state.fitted, state.states, state.seen, state.fit_error
        due = fitted is None or end - fitted.fitted_at >= p.refit_interval
        if not due and end == seen and state.last is not None:
            return state.last, state
        if due and (state.fit_error is None or end > seen):
            try:
                fitted = fit_predictor(load, p)
                states, seen, error = None, -math.inf, None
            except ConfigError as exc:  # history too short yet: reactive only until it grows
                error, seen = str(exc), end
        if fitted is None:
            return None, replace(state, seen=seen, fit_error=error)
        if states is None:
            states = fitted.filter(load.resample(p.step).values[-int(p.max_history // p.step) :])
        elif end > seen:  # the steps completed since (all the history holds, at most)
            n = min(steps, round((end - seen) / p.step))
            new = load.values[(steps - n) * k : steps * k].reshape(-1, k).sum(axis=1)
            states = fitted.update(states, new)
        fc = fitted.forecast(states, p.horizon_steps, end)
        return fc, replace(state, fitted=fitted, states=states, seen=end, fit_error=error, last=fc)

    # -- the decision ----------------------------------------------------------------------
    def decide(
        self, ctx: ScalingContext, state: PredictiveState
    ) -> tuple[ScalingDecision, PredictiveState]:
        s = self.settings
        now = ctx.now
        fc, state = self.forecast(ctx.load, state)
        service = ctx.service_time if ctx.service_time else s.default_service_time
        conc = max(1, ctx.concurrency)
        capacity = conc / service  # requests/s one replica serves
        lead_from = now + ctx.startup_time
        lead_to = lead_from + s.lead + s.interval
        point_rate = upper_rate = 0.0
        predicted = 0
        if fc is not None:
            point_rate, upper_rate = fc.window(lead_from, lead_to)
            predicted = replicas_for(
                upper_rate,
                service,
                conc,
                wait=s.slo,
                probability=s.wait_probability,
                max_replicas=s.max_replicas,
            )
        waiting = s.reactive_queue_share * ctx.queued
        reactive = math.ceil((ctx.in_flight + waiting) / (conc * s.reactive_utilization))
        current = ctx.target_replicas
        score = None
        if s.use_score and ctx.signals is not None:
            score = score_signals(signal_readings(ctx.signals, self._score), self._score)
            if score.action is ScalingAction.SCALE_UP:
                reactive = max(reactive, current + 1)
            elif score.action is ScalingAction.MAINTAIN:
                reactive = max(reactive, min(current, ctx.ready_replicas))
        cap = s.affordable_replicas
        raw = clamp(max(predicted, reactive), s.min_replicas, cap)
        up_rec = down_rec = raw
        for t, rec in state.recommendations:
            if t > now - s.scale_up_window:
                up_rec = min(up_rec, rec)
            if t > now - s.scale_down_window:
                down_rec = max(down_rec, rec)
        desired = min(max(current, up_rec), down_rec)
        read, session_rate, floor, headroom, state = self.session_floor(ctx, service, state)
        desired = max(desired, min(cap, max((f for _, f in state.session_floors), default=0)))
        burst_upper, burst_floor, state = self.burst_floor(ctx, service, state)
        if s.burst_hold_only:  # asymmetric: never scale up for it, only keep what runs
            burst_floor = min(burst_floor, current)
        desired = max(desired, min(cap, burst_floor))
        peak, peak_floor = self.seasonal_floor(ctx, service)
        if s.seasonal_hold_only:  # a reserve kept in the bursty hours, never scaled up for
            peak_floor = min(peak_floor, current)
        desired = max(desired, min(cap, peak_floor))
        if desired > current:
            step = max(s.max_step_up, math.ceil(current * s.max_step_up_percent / 100.0))
            desired = min(desired, current + step)
        elif desired < current:
            desired = max(desired, current - s.max_step_down)
        desired = clamp(desired, s.min_replicas, cap)
        keep = max(s.scale_up_window, s.scale_down_window)
        recs = (*(r for r in state.recommendations if r[0] > now - keep), (now, raw))
        new_state = replace(state, recommendations=recs)
        details: dict[str, Any] = {
            "predicted_replicas": predicted,
            "reactive_replicas": reactive,
            "recommendation": raw,
            "capacity_rps_per_replica": round(capacity, 6),
            "service_time": round(service, 4),
            "expected_cost_per_hour": round(desired * s.cost_per_replica_hour, 4),
        }
        if session_rate is not None:  # (session_expected: what it read, for a replay)
            details.update(session_rate=round(session_rate, 6), session_floor=floor,
                           session_expected=read)  # fmt: skip
        if headroom is not None:
            details.update(session_headroom=headroom)
        if burst_upper is not None:
            details.update(burst_upper=burst_upper, burst_floor=burst_floor)
        if peak is not None:
            details.update(seasonal_burst=peak, seasonal_floor=peak_floor)
        if score is not None:
            details.update(score=round(score.score, 4), score_action=score.action.value)
        if new_state.fitted is not None:  # where it was fitted: a replay starts at a refit
            details.update(fitted_at=new_state.fitted.fitted_at)
        if new_state.burst is not None:
            details.update(burst_fitted_at=new_state.burst.fitted_at)
        if fc is not None:
            details.update(
                forecast=point_rate,
                forecast_upper=upper_rate,
                forecast_model=fc.model,
                forecast_window=(lead_from, lead_to),
            )
        reason = (
            f"forecast p{round(s.predictor.quantile * 100)} {upper_rate:.3f} req/s → {predicted}, "
            f"ongoing {ctx.ongoing} → {reactive}"
            if fc is not None
            else f"no forecast yet ({state.fit_error or 'no history'}); "
            f"ongoing {ctx.ongoing} → {reactive}"
        )
        if session_rate is not None:
            reason += f", sessions {session_rate:.3f} req/s → {floor}"
        if burst_upper is not None:
            reason += (
                f", burst p{round((s.burst_quantile or 0) * 100)} {burst_upper:g} req "
                f"→ {burst_floor}"
            )
        if peak is not None:
            reason += f", seasonal burst {peak:g} req → {peak_floor}"
        return ScalingDecision.relative(desired, current, reason, **details), new_state
