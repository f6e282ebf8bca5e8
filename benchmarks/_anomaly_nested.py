"""Nested leave-one-category-out choice of the spike record's settings
(``AnomalySettings.spike_window`` / ``spike_factor``), and of the change record's
(``change_*``, off or on), among them: a figure that no choice has seen.

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

``CHANGE_GRID`` adds the change record (``prsm.performance.analytics._change``) at the default
spike settings; it was fixed after a sweep on NAB's fitting categories only (artificial,
realAWSCloudwatch, realAdExchange) and before any figure of it on the other categories was
computed; the nested figure is reported over ``GRID`` alone and over both, by the same rule.
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
Setting = tuple[float, ...]
# (spike_window, spike_factor); (0, 1.6): no spike records. The grid the settings were first
# explored on (README, Analytics), fixed before the nested figures were computed.
GRID: tuple[Setting, ...] = (
    (0, 1.6),
    *((w, f) for w in (1500, 2000, 2500, 3000) for f in (1.0, 1.3, 1.6, 2.0, 2.5)),
)
CHANGE_FIELDS = ("change_window", "change_factor", "change_drift", "change_alpha", "change_score")
# (2000, 1.6, *CHANGE_FIELDS): the default spike records and a change record; see the module.
# The default (``AnomalySettings()``) is the choice the nested rule made for five categories.
CHANGE_GRID: tuple[Setting, ...] = tuple(
    (2000, 1.6, 3000, f, d, a, sc)
    for a in (0.01, 0.002)
    for sc in (0.505, 0.6)
    for f in (1.0, 1.3)
    for d in (1.0, 2.0)
)


def settings_of(key: Setting) -> AnomalySettings:
    """The detector's settings for a grid key (the defaults for everything it does not name)."""
    window, factor, *change = key
    fields: dict[str, float] = dict(zip(CHANGE_FIELDS, change, strict=False))
    s = dataclasses.replace(AnomalySettings(), spike_window=int(window), spike_factor=factor)
    fields["change_window"] = int(fields.get("change_window", 0))  # a spike key: no change records
    return dataclasses.replace(s, **fields)  # type: ignore[arg-type]


def run_grid(
    series: Sequence[NabSeries],
    known: Mapping[Setting, Scores] | None = None,
    grid: Sequence[Setting] = GRID,
) -> dict[Setting, Scores]:
    """Scores of every ``grid`` setting (one fresh detector a series); ``known`` ones reused."""
    out: dict[Setting, Scores] = {}
    for key in grid:
        if known and key in known:
            out[key] = known[key]
            continue
        s = settings_of(key)
        out[key] = {x.name: AnomalyDetector(s).score_series(x.values, x.timestamps) for x in series}
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
