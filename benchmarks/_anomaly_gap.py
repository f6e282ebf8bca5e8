"""Where a detector's NAB points go, for the anomaly benchmark: each profile's score taken apart
into what late detections, missed windows and false positives cost (``losses``), and the score
difference between two detectors taken apart window by window (``head_to_head``), and what
each further window costs when the threshold is lowered to catch it (``more_windows``).

A window caught at its left edge earns ``tp_weight``; caught later, the scaled sigmoid of its
relative position (-1 the left edge, -0.5 the labelled point, NAB's windows being centred on
it, 0 the right edge) times ``tp_weight``; missed, ``-fn_weight``. So, in score points
(100 × raw / (windows × (tp_weight + fn_weight)), the width of NAB's normalisation):

    score = 100 - late - missed - false_positives

``late``: the caught windows' shortfall from ``tp_weight``; ``missed``: ``tp_weight +
fn_weight`` a missed window; ``false_positives``: their summed cost. This holds when no window
lies wholly in a file's probation period (none does in NAB's corpus); ``losses`` reports the
score :func:`score_corpus` gives beside the parts, so a reader can check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from prsm.performance.analytics import (
    NabProfile,
    NabSeries,
    WindowOutcome,
    score_corpus,
    window_outcomes,
)

Scores = Mapping[str, npt.ArrayLike]


def position(w: WindowOutcome) -> float | None:
    """The first detection's relative position in its window (NAB's sweeper's), or None."""
    if w.detected_at is None:
        return None
    return -(w.end - w.detected_at + 1) / (w.end - w.start + 1)


def _mean_position(wins: Sequence[WindowOutcome]) -> float | None:
    pos = [p for p in map(position, wins) if p is not None]
    return round(float(np.mean(pos)), 3) if pos else None


def losses(series: Sequence[NabSeries], scores: Scores, profile: NabProfile) -> dict[str, Any]:
    """One detector at its corpus threshold for ``profile``: windows caught and missed, the
    mean relative position of the first detections, and the points lost to each cause."""
    r = score_corpus(series, scores, profile)
    wins, fps = window_outcomes(series, scores, profile, r.threshold)
    span = len(wins) * (profile.tp_weight + profile.fn_weight) / 100.0
    caught = [w for w in wins if w.detected_at is not None]
    late = sum(profile.tp_weight - w.value for w in caught)
    missed = (len(wins) - len(caught)) * (profile.tp_weight + profile.fn_weight)
    fp_cost = sum(f.cost for f in fps)
    return {
        "threshold": round(r.threshold, 4),
        "score": round(r.score, 2),
        "windows": len(wins),
        "caught": len(caught),
        "false_positives": int(sum(f.count for f in fps)),
        "mean_position": _mean_position(caught),
        "lost_late": round(late / span, 2),
        "lost_missed": round(missed / span, 2),
        "lost_false_positives": round(fp_cost / span, 2),
    }


def head_to_head(
    series: Sequence[NabSeries], ours: Scores, theirs: Scores, profile: NabProfile
) -> dict[str, Any]:
    """Ours minus theirs in score points, each at its own corpus threshold, taken apart: the
    windows both catch (ours earlier or later), those only one catches, and false positives.
    The four parts add up to the difference of the two scores."""
    sides = []
    for scores in (ours, theirs):
        thr = score_corpus(series, scores, profile).threshold
        sides.append(window_outcomes(series, scores, profile, thr))
    (w_ours, fp_ours), (w_theirs, fp_theirs) = sides
    span = len(w_ours) * (profile.tp_weight + profile.fn_weight) / 100.0
    groups: dict[str, list[tuple[WindowOutcome, WindowOutcome]]] = {
        "both": [], "ours_only": [], "theirs_only": [], "neither": []
    }  # fmt: skip
    for a, b in zip(w_ours, w_theirs, strict=True):
        hit = (a.detected_at is not None, b.detected_at is not None)
        key = {(True, True): "both", (True, False): "ours_only", (False, True): "theirs_only"}
        groups[key.get(hit, "neither")].append((a, b))

    def gain(pairs: list[tuple[WindowOutcome, WindowOutcome]]) -> float:
        return round(sum(a.value - b.value for a, b in pairs) / span, 2)

    both = groups["both"]
    fp_gain = (sum(f.cost for f in fp_theirs) - sum(f.cost for f in fp_ours)) / span
    out: dict[str, Any] = {k: len(v) for k, v in groups.items()}
    out["mean_position_both"] = [_mean_position([p[k] for p in both]) for k in (0, 1)]
    out["points"] = {
        "both_caught_timing": gain(both),
        "ours_only": gain(groups["ours_only"]),
        "theirs_only": gain(groups["theirs_only"]),
        "false_positives": round(fp_gain, 2),
    }
    out["theirs_only_windows"] = [f"{a.series}#{a.window}" for a, _ in groups["theirs_only"]]
    return out


def more_windows(
    series: Sequence[NabSeries], scores: Scores, profile: NabProfile, k: int = 3
) -> list[dict[str, Any]]:
    """The threshold lowered, from the corpus optimum, just far enough to catch 1, 2, ... ``k``
    more windows (to the missed windows' best positive scores, highest first): windows caught,
    false positives (points) and the score at each. How many false positives a further window costs
    says whether a detector's misses are near misses."""
    r = score_corpus(series, scores, profile)
    wins, _ = window_outcomes(series, scores, profile, r.threshold)
    # a missed window with no positive score is caught only by alarming on every point
    bests = sorted({w.best_score for w in wins if w.detected_at is None and w.best_score > 0})
    out: list[dict[str, Any]] = []
    for thr in [r.threshold, *bests[::-1][:k]]:
        m = score_corpus(series, scores, profile, threshold=thr)
        out.append(
            {"threshold": round(thr, 4), "caught": m.tp, "false_positives": m.fp,
             "score": round(m.score, 2)}
        )  # fmt: skip
    return out
