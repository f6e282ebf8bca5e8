"""``PredictiveScaler``: the post's entry point, ``await scaler.predict_and_scale()``.

It composes a :class:`LoadTracker` (the load the request path reports), the
:class:`PredictivePolicy` (forecast → replicas, the reactive floor, stabilisation, step and
cost limits), a :class:`ScalingController` and its backend (the in-memory one by default),
driven by a :class:`ScalingLoop`. :meth:`predict_and_scale` runs one step and returns the
post's dict::

    {"predicted_load": LoadForecast | None,      # request rate ahead, point and p90
     "scaling_actions": [PlannedAction, ...],
     "expected_cost": float,                  # per hour, at the target
     "decision": ScalingDecision, "reports": [ActionReport, ...]}

:meth:`start` runs the same step every ``interval`` in the background.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..clock import Clock, SystemClock
from ..errors import ConfigError
from ..monitoring._registry import MetricsRegistry
from ._controller import ControllerSettings, InMemoryBackend, ScalingBackend, ScalingController
from ._loop import ScalingLoop
from ._predictive import PredictivePolicy, PredictiveSettings, PredictiveState
from ._predictor import LoadForecast, LoadPredictor
from ._score import MultiDimensionalScaler
from ._tracker import LoadTracker


class PredictiveScaler:
    """See the module docstring."""

    def __init__(
        self,
        backend: ScalingBackend | None = None,
        settings: PredictiveSettings | None = None,
        *,
        controller: ScalingController | None = None,
        tracker: LoadTracker | None = None,
        concurrency: int = 1,
        startup_time: float = 60.0,
        clock: Clock | None = None,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        self.settings = settings or PredictiveSettings()
        self.clock = clock or SystemClock()
        self.metrics = metrics or MetricsRegistry()
        s = self.settings
        self.controller = controller or ScalingController(
            backend or InMemoryBackend(clock=self.clock, initial=s.min_replicas),
            ControllerSettings(min_replicas=s.min_replicas, max_replicas=s.max_replicas),
            clock=self.clock,
            metrics=self.metrics,
        )
        self.tracker = tracker or LoadTracker(clock=self.clock)
        kept = self.tracker.sessions.new_window
        if s.session_new_window is not None and s.session_new_window > kept:
            raise ConfigError(  # each step's decision would fail on it: say so now
                "session_new_window",
                f"must be at most the session tracker's new_window ({kept:g} s), "
                f"got {s.session_new_window!r}",
            )
        self.policy = PredictivePolicy(s)
        self.scorer = MultiDimensionalScaler(s.score_settings().metrics)
        self.loop = ScalingLoop(
            self.policy,
            self.controller,
            self.tracker,
            concurrency=concurrency,
            startup_time=startup_time,
            score=s.score_settings(),
            clock=self.clock,
            metrics=self.metrics,
            replay_span=self.policy.replay_memory(self.tracker.sessions.window[1]),
            max_replicas=s.max_replicas,
        )

    @property
    def load_predictor(self) -> LoadPredictor:
        """The forecaster, holding the policy's latest fit (refitted on its schedule)."""
        state: PredictiveState = self.loop.state
        return LoadPredictor(self.settings.predictor, fitted=state.fitted)

    def forecast(
        self, prediction_horizon: dt.timedelta | float | None = None
    ) -> LoadForecast | None:
        """The latest forecast, over ``prediction_horizon`` when given (default the
        predictor's horizon)."""
        state: PredictiveState = self.loop.state
        if state.last is None or state.fitted is None or state.states is None:
            return state.last
        if prediction_horizon is None:
            return state.last
        horizon = (
            prediction_horizon.total_seconds()
            if isinstance(prediction_horizon, dt.timedelta)
            else float(prediction_horizon)
        )
        step = self.settings.predictor.step
        h = max(1, -(-int(horizon) // int(step)))
        return state.fitted.forecast(state.states, h, state.last.start)

    async def predict_and_scale(
        self, prediction_horizon: dt.timedelta | float = dt.timedelta(minutes=15)
    ) -> dict[str, Any]:
        """One scaling step; see the module docstring for the dict returned."""
        step = await self.loop.step()
        return {
            "predicted_load": self.forecast(prediction_horizon),
            "scaling_actions": [r.action for r in step.reports],
            "expected_cost": step.decision.target * self.settings.cost_per_replica_hour,
            "decision": step.decision,
            "reports": step.reports,
        }

    def start(self) -> None:
        """Run :meth:`predict_and_scale`'s step every ``interval`` in the background."""
        self.loop.start()

    async def close(self) -> None:
        await self.loop.close()
        await self.controller.close()

    def snapshot(self, last: int = 50) -> dict[str, Any]:
        """The loop's policy, parameters and last ``last`` steps and actions (what
        ``/admin/scaling`` shows)."""
        return self.loop.snapshot(last)
