"""QQP parts of the semantic benchmark: candidates, verifier fitting, protocol scoring."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._qqp import Protocol, build_protocol, cached_embeddings, load_pairs
from prsm.performance.caching.semantic._features import FEATURE_NAMES, pair_features
from prsm.performance.caching.semantic._verifier import DEFAULT_PATH, export_sklearn

TOP_K = 5
#: Binary features that may veto a pair outright; each is kept only if dev F1 allows it.
RULES = (
    "direction_swap",
    "number_mismatch",
    "entity_only_swap",
    "negation_only_diff",
    "entity_swap",
    "negation_mismatch",
)
RULE_TOLERANCE = 0.005


@dataclass
class Split:
    """One QQP file under the protocol, with embeddings and the top-k candidates per lookup."""

    name: str
    proto: Protocol
    cached_vecs: np.ndarray
    lookup_vecs: np.ndarray
    top: np.ndarray  # (lookups, k) indices into cached, best first
    cos: np.ndarray  # (lookups, k)
    right: np.ndarray  # (lookups, k) candidate is in the lookup's class
    answerable: int


def load_split(
    name: str, encode: Callable[[list[str]], np.ndarray], limit: int | None = None
) -> Split:
    proto = build_protocol(load_pairs(name, limit))
    emb = cached_embeddings(name, proto.cached + proto.lookups, encode, save=limit is None)
    cv = np.stack([emb[t] for t in proto.cached])
    lv = np.stack([emb[t] for t in proto.lookups])
    k = min(TOP_K, len(cv))
    tops, coss = [], []
    for i in range(0, len(lv), 2048):
        s = lv[i : i + 2048] @ cv.T
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        c = np.take_along_axis(s, top, 1)
        order = np.argsort(-c, axis=1, kind="stable")
        tops.append(np.take_along_axis(top, order, 1))
        coss.append(np.take_along_axis(c, order, 1))
    top, cos = np.vstack(tops), np.vstack(coss)
    ccls = np.array([proto.cached_class(i) for i in range(len(proto.cached))])
    lcls = np.array([proto.lookup_class(j) for j in range(len(proto.lookups))])
    return Split(name, proto, cv, lv, top, cos, ccls[top] == lcls[:, None], proto.answerable())


def features(split: Split) -> np.ndarray:
    p, k = split.proto, split.top.shape[1]
    rows = [
        pair_features(p.lookups[j], p.cached[split.top[j, r]], float(split.cos[j, r]),
                      float(split.cos[j, 0]), rank=r,
                      next_cosine=float(split.cos[j, r + 1]) if r + 1 < k else None)
        for j in range(len(p.lookups))
        for r in range(k)
    ]  # fmt: skip
    return np.asarray(rows, dtype=np.float64)


def prf(hit: np.ndarray, right: np.ndarray, answerable: int) -> dict[str, float]:
    hits = int(hit.sum())
    correct = int((hit & right).sum())
    p = correct / hits if hits else 0.0
    r = correct / answerable if answerable else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "hits": hits, "correct": correct}


def best_of(probs: np.ndarray, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Per lookup: the verifier's best candidate's probability and whether it is right."""
    p = probs.reshape(split.top.shape)
    best = p.argmax(axis=1)
    idx = np.arange(len(p))
    return p[idx, best], split.right[idx, best]


def choose_threshold(
    score: np.ndarray, right: np.ndarray, answerable: int, *, min_precision: float | None = None
) -> float:
    """The threshold with the best F1 (or the most recall at ``min_precision``)."""
    best_t, best_v = 1.0, -1.0
    for t in np.unique(np.round(score, 4)):
        m = prf(score >= t, right, answerable)
        if min_precision is not None:
            v = m["recall"] if m["precision"] >= min_precision else -1.0
        else:
            v = m["f1"]
        if v > best_v:
            best_t, best_v = float(t), v
    return best_t


def _model() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]

    return HistGradientBoostingClassifier(
        max_iter=150, learning_rate=0.1, max_leaf_nodes=15, random_state=0
    )


def fit_verifier(dev: Split, out: Path = DEFAULT_PATH, folds: int = 5) -> dict[str, Any]:
    """Fit the verifier on dev; thresholds from out-of-fold predictions; write the JSON."""
    t0 = time.perf_counter()
    x = features(dev)
    y = dev.right.reshape(-1).astype(int)
    n, k = dev.top.shape
    fold_of = np.random.default_rng(0).integers(0, folds, n).repeat(k)
    oof = np.zeros(len(y))
    for f in range(folds):
        m = _model().fit(x[fold_of != f], y[fold_of != f])
        oof[fold_of == f] = m.predict_proba(x[fold_of == f])[:, 1]
    rules: list[str] = []
    score, right = best_of(oof, dev)
    f1 = prf(score >= choose_threshold(score, right, dev.answerable), right, dev.answerable)["f1"]
    rule_log = {}
    for rule in RULES:
        fires = x[:, FEATURE_NAMES.index(rule)] > 0.5
        trial = np.where(fires, 0.0, oof)
        s2, r2 = best_of(trial, dev)
        f2 = prf(s2 >= choose_threshold(s2, r2, dev.answerable), r2, dev.answerable)["f1"]
        rule_log[rule] = {"fires": int(fires.sum()), "dev_f1_without": f1, "dev_f1_with": f2}
        if f2 >= f1 - RULE_TOLERANCE:
            rules.append(rule)
            oof, f1 = trial, max(f1, f2)
    score, right = best_of(oof, dev)
    t_f1 = choose_threshold(score, right, dev.answerable)
    t_p80 = choose_threshold(score, right, dev.answerable, min_precision=0.80)
    best_cos = dev.cos[np.arange(n), oof.reshape(n, k).argmax(axis=1)]
    floor = float(np.floor(np.quantile(best_cos[score >= t_f1], 0.005) * 100) / 100)
    final = _model().fit(x, y)
    meta = {
        "fitted_on": "qqp_pairs_dev.jsonl",
        "top_k": k,
        "pairs": len(y),
        "threshold_best_f1": t_f1,
        "rules": rule_log,
        "threshold_precision_0_80": t_p80,
        "dev_out_of_fold_best_f1": prf(score >= t_f1, right, dev.answerable),
        "dev_out_of_fold_precision_0_80": prf(score >= t_p80, right, dev.answerable),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    data = export_sklearn(final, threshold=t_f1, candidate_threshold=floor, rules=rules, meta=meta)
    out.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    return meta


def verifier_probs(split: Split, verifier: Any) -> np.ndarray:
    return np.asarray(verifier.predict(features(split)))


def lookup_sample(split: Split, n: int, seed: int = 0) -> Sequence[int]:
    rng = np.random.default_rng(seed)
    n = min(n, len(split.proto.lookups))
    picked: list[int] = rng.choice(len(split.proto.lookups), size=n, replace=False).tolist()
    return picked
