"""A floor for the bursts this time of day has brought on past days.

On a service used by people in one region, the bursts that outrun a replica's start-up come
back at the same hours day after day (on the main trace's fitting period: the largest
2-minute burst of each busy UTC hour is 10–18 requests on almost every day, 0–3 in the
quiet ones). A burst that
ramps faster than the start-up cannot be answered once it is seen; it can be provisioned for
ahead when the time of day says one is likely.

:func:`seasonal_burst` looks, on each of the last ``days`` days, at the ``width`` seconds
around the time of day ``at`` (the time a replica asked for now would be ready), and takes
that day's largest count of arrivals in ``burst`` seconds; the ``rank``-th largest of those
daily peaks (1: the largest) is the burst provisioned for. :func:`seasonal_replicas` gives
the replicas that start it, on top of the requests in the system now, within the SLO. A pure
function of the arrival history and the time: no state, nothing fitted.

Measured (``python -m benchmarks.autoscaling --seasonal``, the main scenario's fitting
period): as a floor or as a hold only, it buys violation minutes at 1.7 replica-hours or
more each, where tightening the session floor buys them at about 0.3 — a time of day says
a burst is likely within the half hour, not when, so the reserve is paid for all of it. Off
by default (``seasonal_share`` null).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ._types import LoadSeries, check_positive, check_whole


@dataclass(frozen=True, slots=True)
class SeasonalSettings:
    """``days``: past days looked at; ``rank``: which of their peaks is provisioned for (1:
    the largest; a day without history does not count); ``burst``: the seconds a burst's
    arrivals are counted over (whole history steps); ``width``: the seconds of the time of
    day, centred on the time a replica asked for now is ready, searched on each day;
    ``span``: the seconds over which the burst's requests are taken to arrive when sizing
    for them (0: at once); ``period``: the length of a day."""

    days: int = 7
    rank: int = 1
    burst: float = 120.0
    width: float = 1800.0
    span: float = 120.0
    period: float = 86400.0

    def __post_init__(self) -> None:
        check_whole("days", self.days, 1)
        check_whole("rank", self.rank, 1)
        if self.rank > self.days:
            raise ConfigError("rank", f"must be at most days ({self.days}), got {self.rank}")
        check_positive("burst", self.burst)
        check_positive("width", self.width)
        check_positive("span", self.span, allow_zero=True)
        check_positive("period", self.period)
        if self.width >= self.period:
            raise ConfigError("width", f"must be shorter than the period, got {self.width:g}")


def seasonal_burst(load: LoadSeries, at: float, s: SeasonalSettings) -> float | None:
    """The ``rank``-th largest of the last ``days`` days' peak arrivals in ``burst`` seconds
    within ``width`` seconds around the time of day ``at`` (``None`` when no past day's
    window lies within the history). Only windows wholly inside the history count."""
    step = load.step
    w = max(1, math.ceil(s.burst / step - 1e-9))
    y = np.asarray(load.values, dtype=np.float64)
    peaks: list[float] = []
    for d in range(1, s.days + 1):
        centre = at - d * s.period
        # the burst windows starting within [centre − width/2, centre + width/2]
        lo = max(0, math.floor((centre - s.width / 2 - load.start) / step + 1e-9))
        hi = min(len(y), math.ceil((centre + s.width / 2 - load.start) / step - 1e-9) + w)
        if hi - lo < w:
            continue
        c = np.concatenate(([0.0], np.cumsum(y[lo:hi])))
        peaks.append(float((c[w:] - c[:-w]).max()))
    if not peaks:
        return None
    peaks.sort(reverse=True)
    return peaks[min(s.rank, len(peaks)) - 1]


def seasonal_replicas(
    ongoing: int, burst: float, service_time: float, concurrency: int, *, slo: float, span: float
) -> int:
    """Replicas that start the ``ongoing`` requests and a ``burst`` arriving over ``span``
    seconds within ``slo`` of their arrival: each serves ``concurrency`` at once and starts
    ``1 + (span + slo) / service_time`` requests per slot in that time."""
    requests = ongoing + burst
    if requests <= 0:
        return 0
    per_replica = concurrency * (1.0 + (span + slo) / service_time)
    return math.ceil(requests / per_replica - 1e-9)
