"""The floors of our policy's decision (:mod:`._predictive`, steps 4, 5 and 5b: the users'
sessions, the burst quantile, the seasonal burst), the base of
:class:`~._predictive.PredictivePolicy`."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ._burst import fit_burst_quantiles
from ._headroom import ForecastErrors
from ._queueing import replicas_for
from ._seasonal import seasonal_burst, seasonal_replicas
from ._types import ScalingContext

if TYPE_CHECKING:
    from ._predictive import PredictiveState
    from ._predictive_settings import PredictiveSettings


class PredictiveFloors:
    """The floors :class:`~._predictive.PredictivePolicy` decides with (its ``settings``)."""

    __slots__ = ()
    settings: PredictiveSettings

    def seasonal_floor(self, ctx: ScalingContext, service: float) -> tuple[float | None, int]:
        """The burst this time of day brought on past days, around the time a replica asked
        for now is ready (``None`` when not used or no past day is in the history), and the
        floor its ``seasonal_share`` asks for."""
        s = self.settings
        if s.seasonal_share is None or ctx.load is None or len(ctx.load) == 0:
            return None, 0
        peak = seasonal_burst(ctx.load, ctx.now + ctx.startup_time, s.seasonal)
        if peak is None:
            return None, 0
        conc = max(1, ctx.concurrency)
        floor = seasonal_replicas(
            ctx.ongoing, s.seasonal_share * peak, service, conc, slo=s.slo, span=s.seasonal.span
        )
        return peak, floor

    def session_floor(
        self, ctx: ScalingContext, service: float, state: PredictiveState
    ) -> tuple[float | None, float | None, int, float | None, PredictiveState]:
        """The sessions' expected rate as read, and with its headroom (``None`` when not
        used), the floor
        it asks for now, the headroom added (``None`` without ``session_error_quantile``),
        and the state with the floors held (those of the last ``session_hold`` seconds, with
        this one) and the forecast's errors."""
        s = self.settings
        if s.session_wait_probability is None or ctx.sessions is None:
            return None, None, 0, None, replace(state, session_floors=())
        read = rate = ctx.sessions.expected_rate(s.session_new_window)
        errors = state.session_errors
        headroom = None
        if s.session_error_quantile is not None:
            errors = self._observe(ctx, errors, read)
            headroom = errors.headroom(s.session_error_quantile)
            if ctx.sessions.settled > 0:
                start, end = ctx.sessions.window
                rate += headroom / (end - start)
        floor = (
            replicas_for(
                rate,
                service,
                max(1, ctx.concurrency),
                wait=s.slo,
                probability=s.session_wait_probability,
                max_replicas=s.max_replicas,
            )
            if rate > 0
            else 0
        )
        held = (
            *(f for f in state.session_floors if f[0] > ctx.now - s.session_hold),
            (ctx.now, floor),
        )
        state = replace(state, session_floors=held, session_errors=errors)
        return read, rate, floor, headroom, state

    def _observe(self, ctx: ScalingContext, errors: ForecastErrors, read: float) -> ForecastErrors:
        """``errors`` after a decision at ``ctx`` that read the sessions' rate ``read``: once a
        request has settled, the arrivals of its interval observed and its window's forecast
        kept (the headroom reads the errors settled, which the forecast leaves as they are)."""
        sessions = ctx.sessions
        if sessions is None or sessions.settled == 0:
            return errors
        start, end = sessions.window
        errors = errors.observe(ctx.now, ctx.arrivals, self.settings.session_error_span)
        return errors.forecast(ctx.now + start, ctx.now + end, read * (end - start))

    def burst_floor(
        self, ctx: ScalingContext, service: float, state: PredictiveState
    ) -> tuple[float | None, int, PredictiveState]:
        """The burst table's upper quantile of the window's arrivals (``None`` when not used
        or not fitted yet), the floor it asks for, and the state with the table (refitted
        every ``predictor.refit_interval``)."""
        s = self.settings
        q, load = s.burst_quantile, ctx.load
        if q is None or load is None or len(load) == 0:
            return None, 0, state
        table, error = state.burst, state.burst_error
        due = table is None or load.end - table.fitted_at >= s.predictor.refit_interval
        if due:
            try:
                table = fit_burst_quantiles(load, q, s.burst, max_history=s.predictor.max_history)
                error = None
            except ConfigError as exc:  # history too short yet: retried as it grows (cheap)
                error = str(exc)
            state = replace(state, burst=table, burst_error=error)
        if table is None:
            return None, 0, state
        # the short span from the decisions' own arrival counts (fresh: the history's last
        # step may be a minute old; a decision's count is used when its window lies within
        # the span), never less than the history says
        latest = ((ctx.now, ctx.arrivals),) if 0 < ctx.interval <= s.burst.short else ()
        keep = tuple(a for a in (*state.arrivals, *latest) if a[0] > ctx.now - s.burst.short)
        state = replace(state, arrivals=keep)
        short, long_ = table.recent(load)
        fresh = float(sum(n for _, n in keep))
        upper = table.upper(max(short, fresh), max(long_, fresh), ctx.now)
        floor = table.replicas(ctx.ongoing + upper, service, max(1, ctx.concurrency), s.slo)
        return upper, floor, state
