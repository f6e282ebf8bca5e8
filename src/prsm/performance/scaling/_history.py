"""The arrival history from the monitoring history store (``MetricsStore.query``).

The monitor writes the requests of each collection interval as ``slo.requests``; summed per
step they are the :class:`LoadSeries` a forecast reads, with the steps that have no sample
(nothing arrived, or the monitor was down) counted as zero. Blocking, like the store: call
it off the event loop (:class:`ScalingLoop` does).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..monitoring._store import MetricsStore
from ._types import LoadSeries, check_positive

#: the monitor's per-interval request count
REQUESTS_METRIC = "slo.requests"


def load_from_store(
    store: MetricsStore,
    *,
    since: float,
    until: float,
    step: float = 60.0,
    metric: str = REQUESTS_METRIC,
    labels: Mapping[str, str] | None = None,
) -> LoadSeries:
    """Requests per ``step`` in ``[since, until)`` (completed steps only), summed over the
    matching series."""
    check_positive("step", step)
    start = np.floor(since / step) * step
    n = max(0, int((until - start) // step))
    values = np.zeros(n)
    for series in store.query(metric, labels, since=start, until=until, step=step, agg="sum"):
        for t, v in series.points:
            i = int((t - start) // step)
            if 0 <= i < n:
                values[i] += v
    return LoadSeries(float(start), step, values)
