"""The verifier cascade's part of the semantic benchmark: its fit on dev, its scores on test.

The cascade (``caching/semantic/_cascade.py``) keeps the plain verifier's probability ``p0``
outside an unsure band and takes the cross verifier's ``p1`` inside it. Its band and its
threshold are chosen on QQP **dev** from out-of-fold probabilities of both models (the folds of
:func:`benchmarks._semantic_qqp.fit_verifier`; the cross-encoder's own dev column is out of
fold too, ``OUT/oof.npy``): the band the fewest dev lookups fall in (the fewest that pay a
model pass) whose decisions differ from the cross verifier's on every candidate for at most
:data:`DISAGREE` of dev lookups — at that verifier's best-F1 threshold and at its threshold of
recall 0.50, the two operating points the goals name — and which lets none of the sets'
*fitting* split's near misses through that the cross verifier stops. (A first criterion,
dev F1 and precision at recall 0.50 within 0.002 of the cross verifier's, chose a band of
[0.28, 0.55] that the high end of the score range fell out of: those two figures are too
noisy on dev to pin the band; agreement lookup by lookup is not.) Test, the sets' report
split and their held-out kinds never enter the choice.

    python -m benchmarks.semantic --fit-cascade --cross-encoder OUT   # verifier-cascade.json
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _semantic_qqp as qqp
from benchmarks._semantic_cross import cross_scores
from benchmarks._semantic_sets import fit_rows
from prsm.performance._paths import cache_dir
from prsm.performance.caching.semantic import CascadeVerifier, Verifier
from prsm.performance.caching.semantic._cascade import CASCADE_FORMAT, CASCADE_PATH
from prsm.performance.caching.semantic._verifier import CROSS_PATH, DEFAULT_PATH

#: the share of dev lookups whose decision may differ from the cross verifier's
DISAGREE = 0.01
LOWS = (0.0, 0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.18, 0.2, 0.22, 0.25, 0.28)
HIGHS = (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)


def _vetoed(v: Verifier, x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The verifier's rules and uncertain-pair gate applied to raw model probabilities."""
    p = p.copy()
    if len(v.rules):
        p[(x[:, v.rules] > 0.5).any(axis=1)] = 0.0
    if len(v.uncertain):
        p[(x[:, v.uncertain] > 0.5).any(axis=1) & (p < v.uncertain_threshold)] = 0.0
    return p


def out_of_fold(v: Verifier, dev: qqp.Split, x: np.ndarray, sets: qqp.SetRows,
                folds: int = 5) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Out-of-fold probabilities of ``v``'s model on dev and the sets' fitting split, by the
    folds and weights of ``fit_verifier`` (``x`` and ``sets.x`` carry every feature column)."""
    n, k = dev.top.shape
    fold_of = np.random.default_rng(0).integers(0, folds, n).repeat(k)
    x_all = np.vstack([x, sets.x])
    y_all = np.concatenate([dev.right.reshape(-1).astype(int), sets.y])
    w_all = np.concatenate([np.ones(len(x)), np.full(len(sets.y), qqp.SET_WEIGHT)])
    f_all = np.concatenate([fold_of, sets.group % folds])
    oof = np.zeros(len(y_all))
    for f in range(folds):
        m = qqp._model().fit(x_all[f_all != f], y_all[f_all != f], sample_weight=w_all[f_all != f])
        oof[f_all == f] = m.predict_proba(x_all[f_all == f])[:, 1]
    oof = _vetoed(v, x_all, oof)
    return oof[: len(x)], oof[len(x) :]


@dataclass
class Choice:
    low: float
    high: float
    threshold: float
    f1: float
    p_at_r50: float
    lookups_paying: float
    candidates_paying: float
    set_near_miss_hits: int
    disagree_at_f1: float
    disagree_at_r50: float


def _served(p: np.ndarray, dev: qqp.Split, floor: float, t: float) -> np.ndarray:
    """Per lookup: the candidate served at threshold ``t`` (-1: none)."""
    n, k = dev.top.shape
    pm = np.where(dev.cos.reshape(-1) >= floor, p, -1.0).reshape(n, k)
    best = pm.argmax(axis=1)
    served: np.ndarray = np.where(pm[np.arange(n), best] >= t, best, -1)
    return served


def _evaluate(p: np.ndarray, dev: qqp.Split, floor: float) -> tuple[float, float, float]:
    score, right = qqp.best_of(np.where(dev.cos.reshape(-1) >= floor, p, -1.0), dev)
    t = qqp.choose_threshold(score, right, dev.answerable)
    f1 = qqp.prf(score >= t, right, dev.answerable)["f1"]
    return t, f1, qqp.precision_at_recall(score, right, dev.answerable)


def in_band(p0: np.ndarray, low: float, high: float) -> np.ndarray:
    mask: np.ndarray = (p0 > 0.0) & (p0 >= low) & (p0 <= high)
    return mask


def choose_band(  # noqa: PLR0917
    dev: qqp.Split, p0: np.ndarray, p1: np.ndarray, set_y: np.ndarray, s0: np.ndarray,
    s1: np.ndarray, floor: float,
) -> tuple[Choice, dict[str, Any]]:  # fmt: skip
    """The cheapest band whose decisions agree with the cross verifier's on all but
    :data:`DISAGREE` of dev lookups at both operating points, letting through none of the
    fitting split's near misses the cross verifier stops."""
    live = dev.cos.reshape(-1) >= floor
    t1, f1_all, p50_all = _evaluate(p1, dev, floor)
    score, right = qqp.best_of(np.where(live, p1, -1.0), dev)
    t50 = float(np.sort(score[right])[::-1][int(np.ceil(0.5 * dev.answerable)) - 1])
    ref1, ref50 = _served(p1, dev, floor, t1), _served(p1, dev, floor, t50)
    set_stop = (set_y == 0) & (s1 < t1)
    log: dict[str, Any] = {"always": {"threshold": t1, "threshold_recall_0_50": t50,
                                      "f1": f1_all, "p_at_r50": p50_all}}  # fmt: skip
    grid = []
    for low in LOWS:
        for high in HIGHS:
            band = in_band(p0, low, high) & live
            mix = np.where(band, p1, p0)
            t, f1, p50 = _evaluate(mix, dev, floor)
            sb = in_band(s0, low, high)
            smix = np.where(sb, s1, s0)
            leaks = int((set_stop & (smix >= t)).sum())
            d1 = float((_served(mix, dev, floor, t1) != ref1).mean())
            d50 = float((_served(mix, dev, floor, t50) != ref50).mean())
            grid.append(Choice(low, high, t, f1, p50,
                               float(band.reshape(dev.top.shape).any(axis=1).mean()),
                               float(band[live].mean()), leaks, d1, d50))  # fmt: skip
    ok = [c for c in grid if max(c.disagree_at_f1, c.disagree_at_r50) <= DISAGREE
          and c.set_near_miss_hits == 0]  # fmt: skip
    best = min(ok or grid, key=lambda c: (c.lookups_paying, -c.f1))
    log["grid"] = [c.__dict__ for c in grid]
    return best, log


def fit(dev: qqp.Split, encode: Any, where: str | Path, x: np.ndarray | None = None,
        ) -> dict[str, Any]:  # fmt: skip
    """Fit the band and the threshold on dev; write ``verifier-cascade.json``."""
    t0 = time.perf_counter()
    base, cross = Verifier.load(DEFAULT_PATH), Verifier.load(CROSS_PATH)
    ce = cross_scores(where, dev)
    sets = fit_rows(encode)
    digest = hashlib.sha256(DEFAULT_PATH.read_bytes() + CROSS_PATH.read_bytes())
    digest.update(ce.dev.tobytes() + ce.sets.tobytes())
    saved = cache_dir() / "qqp-embeddings" / f"cascade-oof-{digest.hexdigest()[:16]}.npz"
    if saved.is_file():  # the out-of-fold fits of the same models and scores: ~10 min
        with np.load(saved) as z:
            p0, s0, p1, s1 = z["p0"], z["s0"], z["p1"], z["s1"]
    else:
        x = qqp.features(dev) if x is None else x
        p0, s0 = out_of_fold(base, dev, x, sets)
        sets1 = replace(sets, x=np.column_stack([sets.x, ce.sets]))
        p1, s1 = out_of_fold(cross, dev, np.column_stack([x, ce.dev]), sets1)
        saved.parent.mkdir(parents=True, exist_ok=True)
        np.savez(saved, p0=p0, s0=s0, p1=p1, s1=s1)
    floor = min(base.candidate_threshold, cross.candidate_threshold)
    best, log = choose_band(dev, p0, p1, sets.y, s0, s1, floor)
    meta = {"fitted_on": "qqp_pairs_dev.jsonl (out of fold) + semantic_pairs.jsonl (split=fit)",
            "disagree": DISAGREE, "chosen": best.__dict__, "always": log["always"],
            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    data = {"format": CASCADE_FORMAT, "base": DEFAULT_PATH.name, "cross": CROSS_PATH.name,
            "low": best.low, "high": best.high, "threshold": best.threshold,
            "candidate_threshold": floor, "meta": meta}  # fmt: skip
    CASCADE_PATH.write_text(json.dumps(data, indent=1) + "\n")
    return {**meta, "grid": log["grid"]}


def test_scores(v: CascadeVerifier, split: qqp.Split, x: np.ndarray, batch: int = 64,
                given: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The cascade's probability for every candidate row of ``split`` and the mask of rows the
    cross-encoder scored: the band's rows over the cosine floor, their scores ``given`` (the
    same model's, for every row, e.g. computed on a GPU) or computed here on the CPU (cached
    on disk by the adapter's and the rows' hash)."""
    p0 = v.base.predict(x)
    band = v.band_of(p0) & (split.cos.reshape(-1) >= v.candidate_threshold)
    rows = np.flatnonzero(band)
    p = split.proto
    queries = [p.lookups[i // split.top.shape[1]] for i in rows]
    cands = [p.cached[int(split.top.reshape(-1)[i])] for i in rows]
    encoder = v.cross.cross_encoder
    assert encoder is not None
    digest = hashlib.sha256(encoder.adapter.read_bytes())
    for q, c in zip(queries, cands, strict=True):
        digest.update(f"{q}\x00{c}\x01".encode())
    path = cache_dir() / "qqp-embeddings" / f"cross-{split.name}-{digest.hexdigest()[:16]}.npy"
    if given is not None:
        ce = np.asarray(given, dtype=np.float64)[rows]
    elif path.is_file():
        ce = np.load(path)
    else:
        order = np.argsort([len(q) + len(c) for q, c in zip(queries, cands, strict=True)])
        ce = np.zeros(len(rows))
        for i in range(0, len(order), batch):
            part = order[i : i + batch]
            ce[part] = encoder.score_pairs([queries[j] for j in part], [cands[j] for j in part])
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, ce)
    p1 = np.zeros(len(p0))
    if len(rows):
        p1[rows] = v.cross.predict(np.column_stack([x[rows], ce]))
    return v.combine(p0, p1, band), band
