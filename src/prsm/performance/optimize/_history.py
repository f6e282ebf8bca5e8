"""Workload rates measured from the monitoring history (``prsm-perf optimize --from-history``).

The allocation file still describes what each workload needs from a replica (cpu, memory, the
model's memory, its latency SLO, where it may run); the history says how much traffic it has.
A workload is matched to the history's ``model.request_rate{model=NAME}`` series by its
``name``; its ``requests_per_second`` becomes the ``quantile`` (0.95 by default: sized for the
busy minutes, not for one outlier) of the per-``step`` mean rates over the window, summed over
gateway processes (``instance`` labels) minute by minute.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from ..errors import ConfigError
from ..monitoring._store import MetricsStore
from ._model import WorkloadProfile

RATE_METRIC = "model.request_rate"


def measured_rates(
    store: MetricsStore,
    *,
    since: float,
    until: float,
    quantile: float = 0.95,
    step: float = 60.0,
) -> dict[str, float]:
    """Model → the ``quantile`` of its per-``step`` request rate in ``[since, until]``."""
    if not 0.0 < quantile <= 1.0:
        raise ConfigError("quantile", f"must be in (0, 1], got {quantile!r}")
    per_model: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for series in store.query(RATE_METRIC, since=since, until=until, step=step, agg="avg"):
        model = series.labels.get("model")
        if not model:
            continue
        for ts, value in series.points:
            per_model[model][ts] += value  # processes' rates add up
    return {
        model: float(np.quantile(np.fromiter(points.values(), float), quantile))
        for model, points in per_model.items()
        if points
    }


def with_measured_rates(
    workloads: Iterable[WorkloadProfile], rates: dict[str, float]
) -> tuple[list[WorkloadProfile], list[str]]:
    """``workloads`` with the measured rate of each one the history knows, and notes on the
    ones it does not (kept at the file's rate) and on models with traffic but no workload."""
    out, notes = [], []
    names = set()
    for w in workloads:
        names.add(w.name)
        rate = rates.get(w.name)
        if rate is None:
            notes.append(f"{w.name}: no history, kept the file's {w.requests_per_second:g} req/s")
            out.append(w)
        else:
            out.append(dataclasses.replace(w, requests_per_second=rate))
    for model in sorted(set(rates) - names):
        notes.append(
            f"{model}: {rates[model]:.3g} req/s in the history but no workload in the file"
        )
    return out, notes
