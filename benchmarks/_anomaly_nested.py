"""Nested leave-one-category-out choice of the spike record's settings
(``AnomalySettings.spike_window`` / ``spike_factor``): a figure that no choice has seen.

The protocol, fixed before any of its figures was computed: for each held-out category (NAB's
six, the two artificial ones as one), every setting of ``GRID`` is scored on the *other*
categories as one corpus, at NAB's optimised threshold there, each profile; the setting with the
largest sum of the three profiles' scores is chosen (ties: the first in ``GRID``'s order). The
held-out category is then scored with that setting, two ways:

* ``threshold from the others``: at the threshold optimised on the other categories with the
  chosen setting (per profile): nothing about the held-out category is chosen on it;
* ``corpus threshold``: each series' scores from its category's chosen setting, concatenated over
  all 58 series, and scored by NAB's optimiser (one threshold per profile over the corpus, as the
  all-58 figure is): the setting's choice is out of sample, the threshold is NAB's.

The raw totals are summed over the held-out categories and normalised as one corpus (as
:func:`~prsm.performance.analytics.score_held_out_groups` does).
"""

from __future__ import annotations

import dataclasses
import math
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
)

Scores = dict[str, npt.NDArray[np.float64]]
Setting = tuple[int, float]
# (spike_window, spike_factor); (0, 1.6): no spike records. The grid the settings were first
# explored on (README, Analytics), fixed before the nested figures were computed.
GRID: tuple[Setting, ...] = (
    (0, 1.6),
    *((w, f) for w in (1500, 2000, 2500, 3000) for f in (1.0, 1.3, 1.6, 2.0, 2.5)),
)


def run_grid(
    series: Sequence[NabSeries], known: Mapping[Setting, Scores] | None = None
) -> dict[Setting, Scores]:
    """Scores of every ``GRID`` setting (one fresh detector a series); ``known`` ones reused."""
    default = AnomalySettings()
    out: dict[Setting, Scores] = {}
    for window, factor in GRID:
        if known and (window, factor) in known:
            out[window, factor] = known[window, factor]
            continue
        s = dataclasses.replace(default, spike_window=window, spike_factor=factor)
        out[window, factor] = {
            x.name: AnomalyDetector(s).score_series(x.values, x.timestamps) for x in series
        }
    return out


def choose(rest: Sequence[NabSeries], runs: Mapping[Setting, Scores]) -> Setting:
    """The setting with the largest sum of the three profiles' scores on ``rest`` (each at its
    own optimised threshold there); the first in ``runs``' order on a tie."""
    return max(  # max keeps the first of equal keys
        runs, key=lambda k: sum(score_corpus(rest, runs[k], p).score for p in PROFILES.values())
    )


def nested_loco(
    series: Sequence[NabSeries],
    runs: Mapping[Setting, Scores],
    group: Callable[[str], str],
) -> dict[str, Any]:
    """The nested figures per profile (both ways, see the module), each group's choice and its
    per-profile score at the others' threshold."""
    groups = sorted({group(s.name) for s in series})
    choices: dict[str, Setting] = {}
    merged: Scores = {}
    for g in groups:
        rest = [s for s in series if group(s.name) != g]
        choices[g] = choose(rest, runs)
        for s in series:
            if group(s.name) == g:
                merged[s.name] = runs[choices[g]][s.name]
    others: dict[str, float] = {}
    corpus: dict[str, float] = {}
    per_group: dict[str, dict[str, Any]] = {g: {"setting": list(choices[g])} for g in groups}
    for key, p in PROFILES.items():
        raw = null = perfect = 0.0
        for g in groups:
            members = [s for s in series if group(s.name) == g]
            rest = [s for s in series if group(s.name) != g]
            scores = runs[choices[g]]
            thr = score_corpus(rest, scores, p).threshold
            r = score_corpus(members, scores, p, threshold=thr)
            per_group[g][key] = round(r.score, 2) if not math.isnan(r.score) else None
            raw += r.raw
            null -= p.fn_weight * (r.tp + r.fn)
            perfect += p.tp_weight * sum(len(s.windows) for s in members)
        others[key] = round(100.0 * (raw - null) / (perfect - null), 2)
        corpus[key] = round(score_corpus(series, merged, p).score, 2)
    return {
        "threshold_from_the_others": others,
        "corpus_threshold": corpus,
        "choices": per_group,
        "grid": [list(g) for g in runs],
    }
