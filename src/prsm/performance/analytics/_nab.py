"""The Numenta Anomaly Benchmark's scoring, re-implemented (numenta/NAB ``nab/sweeper.py``).

A detector gives every point a score in [0, 1]; a threshold turns scores into detections. Each
labelled *window* earns the best weighted scaled-sigmoid value of the detections inside it (the
earliest detection earns the most; a missed window costs ``fn_weight``); each detection outside
a window costs ``fp_weight`` times the scaled sigmoid of its distance past the window before it
(-1 when there is none). The first ``min(floor(0.15 n), 750)`` points of a file (the probation
period) are not scored. One threshold per detector and profile is chosen over the whole corpus
(the best raw score over every distinct score value, scores ``>=`` the threshold detect), and the
raw total is normalised so that the null detector scores 0 and the perfect one 100.

It lives in the analytics room (not only in the benchmark) because it is how a user checks a
detector against incidents they have labelled themselves.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError

FloatArray = npt.NDArray[np.float64]

PROBATION_PERCENT = 0.15


@dataclass(frozen=True, slots=True)
class NabProfile:
    """The weights of one NAB application profile (``config/profiles.json``)."""

    name: str
    tp_weight: float
    fn_weight: float
    fp_weight: float

    def __post_init__(self) -> None:
        for field in ("tp_weight", "fn_weight", "fp_weight"):
            value = getattr(self, field)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(field, f"must be a finite weight >= 0, got {value!r}")


PROFILES: dict[str, NabProfile] = {
    "standard": NabProfile("standard", 1.0, 1.0, 0.11),
    "reward_low_FP_rate": NabProfile("reward_low_FP_rate", 1.0, 1.0, 0.22),
    "reward_low_FN_rate": NabProfile("reward_low_FN_rate", 1.0, 2.0, 0.11),
}


@dataclass(frozen=True, slots=True)
class NabSeries:
    """One labelled file: its values, timestamps and windows as inclusive index pairs."""

    name: str
    timestamps: npt.NDArray[np.datetime64]
    values: FloatArray
    windows: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if len(self.timestamps) != len(self.values):
            raise ConfigError("values", f"{self.name}: one value a timestamp is needed")
        for start, end in self.windows:
            if not 0 <= start <= end < len(self.values):
                raise ConfigError("windows", f"{self.name}: window {start}..{end} out of range")


@dataclass(frozen=True, slots=True)
class NabResult:
    """A detector's result on a corpus under one profile."""

    profile: str
    threshold: float
    raw: float
    score: float
    tp: int
    fp: int
    fn: int


def probation_length(n: int) -> int:
    """NAB's probation period: ``min(floor(0.15 n), 0.15 * 5000)`` points."""
    return int(min(math.floor(PROBATION_PERCENT * n), PROBATION_PERCENT * 5000))


def scaled_sigmoid(position: float) -> float:
    """NAB's scaled sigmoid of a relative position (-1 left edge, 0 right edge, >0 after)."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def sweep_scores(n: int, windows: Sequence[tuple[int, int]], profile: NabProfile) -> FloatArray:
    """Each point's weighted score were it a detection (``Sweeper.calcSweepScore``)."""
    out = np.empty(n, dtype=np.float64)
    max_tp = scaled_sigmoid(-1.0)
    pos = 0
    prev_right: int | None = None
    prev_width = 0.0
    for start, end in sorted(windows):
        _fill_fp(out, pos, start, prev_right=prev_right, prev_width=prev_width, profile=profile)
        width = float(end - start + 1)
        for i in range(start, end + 1):
            rel = -(end - i + 1) / width
            out[i] = scaled_sigmoid(rel) * profile.tp_weight / max_tp
        prev_right, prev_width, pos = end, width, end + 1
    _fill_fp(out, pos, n, prev_right=prev_right, prev_width=prev_width, profile=profile)
    return out


def _fill_fp(
    out: FloatArray,
    lo: int,
    hi: int,
    *,
    prev_right: int | None,
    prev_width: float,
    profile: NabProfile,
) -> None:
    if prev_right is None:
        out[lo:hi] = -1.0 * profile.fp_weight
        return
    for i in range(lo, hi):
        # NAB divides by (width - 1); a one-point window would divide by zero there too.
        rel = abs(prev_right - i) / (prev_width - 1.0) if prev_width > 1 else math.inf
        out[i] = scaled_sigmoid(rel) * profile.fp_weight


def _window_ids(n: int, windows: Sequence[tuple[int, int]]) -> npt.NDArray[np.int64]:
    ids = np.full(n, -1, dtype=np.int64)
    for k, (start, end) in enumerate(sorted(windows)):
        ids[start : end + 1] = k
    return ids


def series_scores(s: NabSeries, scores: Mapping[str, npt.ArrayLike]) -> FloatArray:
    """``scores[s.name]`` as floats: one finite score a point of ``s``, else ConfigError."""
    if s.name not in scores:
        raise ConfigError("scores", f"no scores for series {s.name!r}")
    a = np.asarray(scores[s.name], dtype=np.float64)
    n = len(s.values)
    if a.shape != (n,):
        raise ConfigError("scores", f"{s.name}: {a.shape[0]} scores for {n} points")
    if not np.all(np.isfinite(a)):
        raise ConfigError("scores", f"{s.name}: scores must be finite")
    return a


def score_corpus(
    series: Sequence[NabSeries],
    scores: Mapping[str, npt.ArrayLike],
    profile: NabProfile,
    *,
    threshold: float | None = None,
) -> NabResult:
    """Score a detector's per-point ``scores`` (by series name) over ``series``.

    With ``threshold=None`` the best threshold over the corpus is chosen, as NAB's optimiser
    does; otherwise that threshold is used (scores ``>=`` it are detections).
    """
    if not series:
        raise ConfigError("series", "the corpus is empty")
    all_scores: list[FloatArray] = []
    all_sweep: list[FloatArray] = []
    all_win: list[npt.NDArray[np.int64]] = []
    n_windows = 0
    n_labelled = 0
    for s in series:
        a = series_scores(s, scores)
        n = len(s.values)
        p = probation_length(n)
        ids = _window_ids(n, s.windows)
        # A window (partly) in probation keeps its name only for its scored points.
        scored_ids = ids[p:]
        present = np.unique(scored_ids[scored_ids >= 0])
        remap = np.full(len(s.windows) + 1, -1, dtype=np.int64)
        remap[present] = np.arange(n_windows, n_windows + len(present))
        all_win.append(np.where(scored_ids >= 0, remap[scored_ids], -1))
        n_windows += len(present)
        n_labelled += len(s.windows)
        all_scores.append(a[p:])
        all_sweep.append(sweep_scores(n, s.windows, profile)[p:])
    a = np.concatenate(all_scores)
    sw = np.concatenate(all_sweep)
    win = np.concatenate(all_win)
    order = np.argsort(-a, kind="stable")
    a, sw, win = a[order], sw[order], win[order]
    # Contribution of each point, taken in falling score order: an FP adds its sweep score;
    # a window point raises its window's best (which starts at -fn_weight).
    best = np.full(n_windows, -profile.fn_weight)
    contrib = np.where(win < 0, sw, 0.0)
    in_win = np.flatnonzero(win >= 0)
    for i in in_win.tolist():
        w = int(win[i])
        if sw[i] > best[w]:
            contrib[i] = sw[i] - best[w]
            best[w] = sw[i]
    base = -profile.fn_weight * n_windows
    cum = base + np.cumsum(contrib)
    is_fp = (win < 0).astype(np.int64)
    cum_fp = np.cumsum(is_fp)
    first_hit = np.zeros(len(a), dtype=np.int64)
    seen: set[int] = set()
    for i in in_win.tolist():
        w = int(win[i])
        if w not in seen:
            seen.add(w)
            first_hit[i] = 1
    cum_tp = np.cumsum(first_hit)
    # Candidate cut points: after the last point of each group of equal scores.
    ends = np.flatnonzero(np.append(a[1:] != a[:-1], True))
    if threshold is None:
        cand_raw = np.append(base, cum[ends])
        k = int(np.argmax(cand_raw))
        if k == 0:
            thr, raw, tp, fp = 1.1, base, 0, 0
        else:
            e = ends[k - 1]
            thr, raw, tp, fp = float(a[e]), float(cum[e]), int(cum_tp[e]), int(cum_fp[e])
    else:
        m = int(np.searchsorted(-a, -threshold, side="right"))  # points with score >= thr
        if m == 0:
            thr, raw, tp, fp = threshold, base, 0, 0
        else:
            e = m - 1
            thr, raw, tp, fp = threshold, float(cum[e]), int(cum_tp[e]), int(cum_fp[e])
    perfect = n_labelled * profile.tp_weight
    null = base  # the null detector misses every scored window
    # A corpus without windows has no scale: its score is NaN (its raw total still counts).
    score = 100.0 * (raw - null) / (perfect - null) if perfect != null else math.nan
    return NabResult(profile.name, thr, raw, score, tp, fp, n_windows - tp)


def score_held_out_groups(
    series: Sequence[NabSeries],
    scores: Mapping[str, npt.ArrayLike],
    profile: NabProfile,
    group: Callable[[str], str],
) -> NabResult:
    """Score each group of series (``group(name)``, e.g. its NAB category) at the threshold
    chosen on all the *other* groups, and normalise the summed raw totals as one corpus.

    This is the corpus score with the threshold fitted out of group: how well one threshold
    carries over to data of a kind it was not chosen on. ``threshold`` is NaN (one a group).
    """
    groups: dict[str, list[NabSeries]] = {}
    for s in series:
        groups.setdefault(group(s.name), []).append(s)
    if len(groups) < 2:
        raise ConfigError("group", f"needs at least two groups, got {sorted(groups)}")
    raw = null = perfect = 0.0
    tp = fp = fn = 0
    for name, members in groups.items():
        rest = [s for s in series if group(s.name) != name]
        thr = score_corpus(rest, scores, profile).threshold
        r = score_corpus(members, scores, profile, threshold=thr)
        raw += r.raw
        null -= profile.fn_weight * (r.tp + r.fn)
        perfect += profile.tp_weight * sum(len(s.windows) for s in members)
        tp, fp, fn = tp + r.tp, fp + r.fp, fn + r.fn
    score = 100.0 * (raw - null) / (perfect - null) if perfect != null else math.nan
    return NabResult(profile.name, math.nan, raw, score, tp, fp, fn)


def load_nab(root: str | Path, *, categories: Sequence[str] | None = None) -> list[NabSeries]:
    """Read NAB's ``data/<category>/<file>.csv`` and ``labels/combined_windows.json``."""
    root = Path(root)
    windows_path = root / "labels" / "combined_windows.json"
    if not windows_path.is_file():
        raise ConfigError("nab_root", f"{windows_path} is missing (is {root} a NAB corpus?)")
    raw_windows: dict[str, list[list[str]]] = json.loads(windows_path.read_text())
    out: list[NabSeries] = []
    for rel in sorted(raw_windows):
        if categories is not None and rel.split("/")[0] not in categories:
            continue
        ts, values = _read_csv(root / "data" / rel)
        index = {t: i for i, t in enumerate(ts.tolist())}
        wins = []
        for start, end in raw_windows[rel]:
            t0, t1 = np.datetime64(start.replace(" ", "T")), np.datetime64(end.replace(" ", "T"))
            if t0.tolist() not in index or t1.tolist() not in index:
                raise ConfigError("windows", f"{rel}: window {start}..{end} not in the data")
            wins.append((index[t0.tolist()], index[t1.tolist()]))
        out.append(NabSeries(rel, ts, values, tuple(wins)))
    if not out:
        raise ConfigError("categories", f"no NAB series matched {categories!r} under {root}")
    return out


def _read_csv(path: Path) -> tuple[npt.NDArray[np.datetime64], FloatArray]:
    lines = path.read_text().splitlines()
    if not lines or not lines[0].startswith("timestamp"):
        raise ConfigError("nab_root", f"{path}: expected a 'timestamp,value' header")
    stamps, values = [], []
    for line in lines[1:]:
        if not line:
            continue
        t, v = line.split(",")[:2]
        stamps.append(t.replace(" ", "T"))
        values.append(float(v))
    return np.array(stamps, dtype="datetime64[us]"), np.array(values, dtype=np.float64)
