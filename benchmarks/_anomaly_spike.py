"""How the anomaly benchmark shows the choice of the spike record's settings
(``AnomalySettings.spike_*``, ``prsm.performance.analytics._spike``): our detector with spike
records off and at the neighbouring settings, scored on the fitting categories (where the
settings were chosen), on all series and on the held-out ones, each on the three profiles at
NAB's optimised threshold; and, per profile, the windows each split gains or loses against the
detector without spike records (at each run's own threshold on that split).

The choice, on the fitting categories alone: ``spike_window`` 2000 beats 1500 (a loss against
no records) and 2500 / 3000; at 2000, factors 1.3 and 1.6 tie best, 1.0 loses and 2.0 / 2.5
win less; of the tie (equal on all three profiles there), 1.6 was taken after both factors'
all-58 figures had been seen. ``_anomaly_nested`` reports the choice made without them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from prsm.performance.analytics import (
    PROFILES,
    AnomalyDetector,
    AnomalySettings,
    NabSeries,
    score_corpus,
    window_outcomes,
)

Scores = dict[str, npt.NDArray[np.float64]]
# (spike_window, spike_factor) around the default; (0, default factor): no spike records.
NEIGHBOURS = ((0, 1.6), (1500, 1.6), (2500, 1.6), (2000, 1.0), (2000, 1.3), (2000, 2.0))


def run_settings(series: Sequence[NabSeries], settings: AnomalySettings) -> Scores:
    """One fresh detector a series under ``settings``."""
    return {s.name: AnomalyDetector(settings).score_series(s.values, s.timestamps) for s in series}


def windows_changed(
    subset: Sequence[NabSeries], base: Mapping[str, Any], other: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Per profile: windows ``other`` catches and ``base`` misses (and the reverse), and the
    false positives of each, each at its own optimised threshold over ``subset``."""
    out: dict[str, dict[str, Any]] = {}
    for key, p in PROFILES.items():
        runs = []
        for sc in (base, other):
            thr = score_corpus(subset, sc, p).threshold
            wins, fps = window_outcomes(subset, sc, p, thr)
            runs.append(({(w.series, w.window) for w in wins if w.detected_at is not None}, fps))
        (caught_b, fps_b), (caught_o, fps_o) = runs
        out[key] = {
            "gained": sorted(f"{s}#{k}" for s, k in caught_o - caught_b),
            "lost": sorted(f"{s}#{k}" for s, k in caught_b - caught_o),
            "false_positives": [sum(f.count for f in fps_b), sum(f.count for f in fps_o)],
        }
    return out


def spike_neighbours(
    series: Sequence[NabSeries],
    ours: Scores,
    in_fit: Callable[[str], bool],
    runs: Mapping[tuple[float, ...], Scores] | None = None,
) -> tuple[Scores, dict[str, Any]]:
    """The scores without spike records, and the JSON block: each neighbouring setting's
    scores per split, and what the default changes against no spike records per split.
    ``runs``: scores already computed, by (window, factor)."""
    splits = {
        "fit": [s for s in series if in_fit(s.name)],
        "all": list(series),
        "held-out": [s for s in series if not in_fit(s.name)],
    }
    default = AnomalySettings()
    block: dict[str, Any] = {"default": [default.spike_window, default.spike_factor]}
    off: Scores = {}
    for window, factor in NEIGHBOURS:
        settings = dataclasses.replace(default, spike_window=window, spike_factor=factor)
        known = runs.get((window, factor)) if runs is not None else None
        sc = known if known is not None else run_settings(series, settings)
        off = sc if window == 0 else off
        block[f"window {window}, factor {factor}"] = {
            name: [round(score_corpus(sub, sc, p).score, 2) for p in PROFILES.values()]
            for name, sub in splits.items()
            if sub
        }
    block["default_vs_off"] = {
        name: windows_changed(sub, off, ours) for name, sub in splits.items() if sub
    }
    return off, block
