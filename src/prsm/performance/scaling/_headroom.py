"""The session floor's own forecast error, measured online, and a headroom sized from it.

Each decision forecasts the requests that will arrive in the window a replica asked for now
can serve (the sessions' expected rate × the window's span, ``[now + window[0], now +
window[1])``). Once that window has passed, the requests that did arrive in it (from the
decisions' own arrival counts, ``ScalingContext.arrivals``) less the forecast is one error.
The ``quantile`` of the errors settled in the last ``span`` seconds, when positive, is the
headroom added to the next forecasts: it grows in hours whose bursts the sessions do not
foresee and falls back in calm ones, instead of a fixed margin.

Everything is a pure function of the previous :class:`ForecastErrors` and the decision's
inputs (the simulator and the live loop call the same code); memory is bounded by the
window's span (arrival counts, pending forecasts) and ``span`` (settled errors) over the
decision interval.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import numpy as np


def _time(entry: tuple[float, float]) -> float:
    return entry[0]


@dataclass(frozen=True, slots=True)
class ForecastErrors:
    """``pending``: forecasts whose window has not passed, ``(window start, window end,
    forecast requests)``; ``arrivals``: ``(decision time, requests that arrived in the
    interval before it)`` for the last window's span; ``errors``: ``(time settled, arrived
    − forecast)`` for the last ``span`` seconds."""

    pending: tuple[tuple[float, float, float], ...] = ()
    arrivals: tuple[tuple[float, int], ...] = ()
    errors: tuple[tuple[float, float], ...] = ()

    def observe(self, now: float, arrivals: int, span: float) -> ForecastErrors:
        """Record the arrivals of the interval that ends at ``now``; settle every forecast
        whose window has ended by ``now``; forget errors settled ``span`` seconds ago or
        more and arrival counts that no pending window can still hold."""
        log = (*self.arrivals, (now, arrivals))
        settled = []
        pending = []
        for start, end, forecast in self.pending:
            if end <= now:
                arrived = sum(n for t, n in log if start < t <= end)
                settled.append((now, arrived - forecast))
            else:
                pending.append((start, end, forecast))
        oldest = min((start for start, _, _ in pending), default=now)
        return ForecastErrors(
            tuple(pending),
            tuple(a for a in log if a[0] > oldest),
            (*self.errors[bisect_right(self.errors, now - span, key=_time) :], *settled),
        )

    def forecast(self, start: float, end: float, requests: float) -> ForecastErrors:
        """Remember a forecast of ``requests`` arrivals in ``(start, end]``."""
        return ForecastErrors((*self.pending, (start, end, requests)), self.arrivals, self.errors)

    def headroom(self, quantile: float) -> float:
        """The ``quantile`` of the settled errors, at least 0 (0 before any has settled)."""
        if not self.errors:
            return 0.0
        values = np.fromiter((e for _, e in self.errors), dtype=np.float64, count=len(self.errors))
        return max(0.0, float(np.quantile(values, quantile)))
