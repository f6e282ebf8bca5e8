"""QQP parts of the semantic benchmark: candidates, feature rows, protocol scoring, the fit.

The verifier is fitted on QQP **dev** (every lookup's top-5 candidates under the protocol,
labelled by its classes) together with the ``fit`` split of the project's own near-miss and
paraphrase sets; thresholds come from out-of-fold predictions. Test, the sets' ``report``
split and their held-out kinds are never seen by the fit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._qqp import Protocol, build_protocol, cached_embeddings, load_pairs
from prsm.performance.caching.semantic._features import FEATURE_NAMES, pair_features
from prsm.performance.caching.semantic._lexicon import load_lexicon
from prsm.performance.caching.semantic._parse import Parsed, parse
from prsm.performance.caching.semantic._verifier import DEFAULT_PATH, export_sklearn

TOP_K = 5
#: Binary features that may veto a pair outright, tried in this order; see :func:`_rules`.
RULES = (
    "role_flip",
    "qualifier_flip",
    "number_mismatch",
    "sub_one_antonym",
    "sub_one_sibling",
    "sub_one_cohyponym",
    "entity_only_swap",
    "negation_only_diff",
    "swap_around_relation",
    "exchange",
    "pair_antonym",
    "sub_small_contrast",
    "sub_small_unknown",
    "sub_one_other_noun",
    "sub_one_other",
    "sub_one_unknown",
    "same_bag_diff_order",
    "negation_mismatch",
)
#: a rule is kept when it costs at most this much dev F1 ...
RULE_TOLERANCE = 0.005
#: ... or when it stops near misses of the fitting split and costs at most this much
SAFETY_TOLERANCE = 0.012
#: weight of one pair of the project's own sets against one QQP candidate row
SET_WEIGHT = 12.0


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


def _classes(proto: Protocol, top: np.ndarray) -> tuple[np.ndarray, int]:
    ccls = np.array([proto.cached_class(i) for i in range(len(proto.cached))])
    lcls = np.array([proto.lookup_class(j) for j in range(len(proto.lookups))])
    return ccls[top] == lcls[:, None], proto.answerable()


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
    right, answerable = _classes(proto, top)
    return Split(name, proto, cv, lv, top, cos, right, answerable)


def closed(split: Split, other: str, limit: int | None = None) -> Split:
    """The same lookups with classes closed over the label-1 pairs of both files."""
    proto = build_protocol(load_pairs(split.name, limit), load_pairs(other, limit))
    proto = Protocol(split.proto.cached, split.proto.lookups, proto.cls_of)
    right, answerable = _classes(proto, split.top)
    return replace(split, proto=proto, right=right, answerable=answerable)


def feature_rows(
    queries: Sequence[str], candidates: Sequence[Sequence[str]], cosines: np.ndarray
) -> np.ndarray:
    """Feature rows of each query against its candidates (best-first), texts parsed once."""
    lex = load_lexicon()
    memo: dict[str, Parsed] = {}

    def p(text: str) -> Parsed:
        got = memo.get(text)
        if got is None:
            got = memo[text] = parse(text, lex)
        return got

    rows = []
    for j, (q, cands) in enumerate(zip(queries, candidates, strict=True)):
        cos = cosines[j]
        k = len(cands)
        for r, c in enumerate(cands):
            nxt = float(cos[r + 1]) if r + 1 < k else None
            rows.append(pair_features(p(q), p(c), float(cos[r]), float(cos[0]), lex, rank=r,
                                      next_cosine=nxt))  # fmt: skip
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))


def features(split: Split) -> np.ndarray:
    p = split.proto
    cands = [[p.cached[i] for i in row] for row in split.top.tolist()]
    return feature_rows(p.lookups, cands, split.cos)


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


def precision_at_recall(score: np.ndarray, right: np.ndarray, answerable: int,
                        recall: float = 0.5) -> float:  # fmt: skip
    """The best precision of any threshold whose recall reaches ``recall``."""
    order = np.argsort(-score, kind="stable")
    correct = np.cumsum(right[order])
    hits = np.arange(1, len(order) + 1)
    ok = correct / max(1, answerable) >= recall
    return float((correct[ok] / hits[ok]).max()) if ok.any() else 0.0


def _model() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]

    return HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.08, max_leaf_nodes=15, random_state=0
    )


@dataclass
class SetRows:
    """The fitting split of the project's own sets, as feature rows."""

    x: np.ndarray
    y: np.ndarray  # 1 paraphrase, 0 near miss
    group: np.ndarray  # int id of each pair's frame (folds keep a frame together)


def _f1_at_best(oof: np.ndarray, dev: Split) -> float:
    score, right = best_of(oof, dev)
    t = choose_threshold(score, right, dev.answerable)
    return prf(score >= t, right, dev.answerable)["f1"]


def _rules(  # noqa: PLR0917
    x: np.ndarray, oof: np.ndarray, dev: Split, sets: SetRows, set_oof: np.ndarray,
           log: dict[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray]:  # fmt: skip
    """Rules kept greedily: those that spare the fitting split's paraphrases (veto at most 1 %
    of them) and are free on dev F1, or stop near misses of the fitting split at a small cost."""
    rules: list[str] = []
    f1 = _f1_at_best(oof, dev)
    for rule in RULES:
        col = FEATURE_NAMES.index(rule)
        fires, fires_set = x[:, col] > 0.5, sets.x[:, col] > 0.5
        trial = np.where(fires, 0.0, oof)
        f2 = _f1_at_best(trial, dev)
        stops = int((fires_set & (sets.y == 0) & (set_oof > 0.3)).sum())
        loses = int((fires_set & (sets.y == 1)).sum())
        spares = loses <= 0.01 * (sets.y == 1).sum()
        keep = spares and (f2 >= f1 - RULE_TOLERANCE or (stops > 0 and f2 >= f1 - SAFETY_TOLERANCE))
        log[rule] = {"fires_dev": int(fires.sum()), "dev_f1_before": f1, "dev_f1_with": f2,
                     "set_near_misses_stopped": stops, "set_paraphrases_vetoed": loses,
                     "kept": bool(keep)}  # fmt: skip
        if keep:
            rules.append(rule)
            oof, f1 = trial, f2
            set_oof = np.where(fires_set, 0.0, set_oof)
    return rules, oof, set_oof


#: one word replaced by one WordNet cannot relate to it ("local" / "remote", "debug" /
#: "troubleshoot"): the structure of both near misses and paraphrases, so it needs more
#: confidence than the rest
UNCERTAIN = ("sub_one_other", "sub_one_unknown")


def _gate(x: np.ndarray, oof: np.ndarray, dev: Split, sets: SetRows,
          set_oof: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, dict[str, Any]]:  # fmt: skip
    """The bar for uncertain pairs: the highest (of 0.30, 0.35, ... 0.90) that costs at most
    :data:`RULE_TOLERANCE` of out-of-fold dev F1 — the safety QQP allows for free."""
    cols = [FEATURE_NAMES.index(u) for u in UNCERTAIN]
    fires, fires_set = (x[:, cols] > 0.5).any(axis=1), (sets.x[:, cols] > 0.5).any(axis=1)
    f1 = _f1_at_best(oof, dev)
    gate, log = 0.0, {"dev_f1_before": f1}
    for g in np.arange(0.30, 0.901, 0.05):
        f2 = _f1_at_best(np.where(fires & (oof < g), 0.0, oof), dev)
        log[f"dev_f1_at_{g:.2f}"] = f2
        if f2 >= f1 - RULE_TOLERANCE:
            gate = round(float(g), 2)
    oof = np.where(fires & (oof < gate), 0.0, oof)
    stopped = int((fires_set & (sets.y == 0) & (set_oof > 0) & (set_oof < gate)).sum())
    lost = int((fires_set & (sets.y == 1) & (set_oof > 0) & (set_oof < gate)).sum())
    set_oof = np.where(fires_set & (set_oof < gate), 0.0, set_oof)
    log.update(threshold=gate, set_near_misses_stopped=stopped, set_paraphrases_lost=lost)
    return gate, oof, set_oof, log


@dataclass
class CrossEncoderScores:
    """The cross-encoder's P(same) for the fit: out of fold on dev's candidate rows (the folds
    of :func:`fit_verifier`), and from the model fitted on all of dev for the sets' rows."""

    dev: np.ndarray
    sets: np.ndarray
    adapter: str  # file name of the adapter beside the verifier JSON
    meta: dict[str, Any]


def fit_verifier(dev: Split, sets: SetRows, out: Path = DEFAULT_PATH, *, folds: int = 5,
                 cross: CrossEncoderScores | None = None, x: np.ndarray | None = None,
                 ) -> dict[str, Any]:  # fmt: skip
    """Fit the verifier on dev and the sets' fitting split; thresholds from out-of-fold
    predictions on dev; write the JSON. With ``cross``, the cross-encoder's probability is one
    more feature (out of fold on dev, by the same folds)."""
    import json

    t0 = time.perf_counter()
    x = features(dev) if x is None else x
    if cross is not None:
        x = np.column_stack([x, cross.dev])
        sets = replace(sets, x=np.column_stack([sets.x, cross.sets]))
    y = dev.right.reshape(-1).astype(int)
    n, k = dev.top.shape
    fold_of = np.random.default_rng(0).integers(0, folds, n).repeat(k)
    set_fold = sets.group % folds
    x_all = np.vstack([x, sets.x])
    y_all = np.concatenate([y, sets.y])
    w_all = np.concatenate([np.ones(len(y)), np.full(len(sets.y), SET_WEIGHT)])
    f_all = np.concatenate([fold_of, set_fold])
    oof_all = np.zeros(len(y_all))
    for f in range(folds):
        m = _model().fit(x_all[f_all != f], y_all[f_all != f], sample_weight=w_all[f_all != f])
        oof_all[f_all == f] = m.predict_proba(x_all[f_all == f])[:, 1]
    oof, set_oof = oof_all[: len(y)], oof_all[len(y) :]
    rule_log: dict[str, Any] = {}
    rules, oof, set_oof = _rules(x, oof, dev, sets, set_oof, rule_log)
    gate, oof, set_oof, gate_log = _gate(x, oof, dev, sets, set_oof)
    score, right = best_of(oof, dev)
    t_f1 = choose_threshold(score, right, dev.answerable)
    t_p80 = choose_threshold(score, right, dev.answerable, min_precision=0.80)
    best_cos = dev.cos[np.arange(n), oof.reshape(n, k).argmax(axis=1)]
    floor = float(np.floor(np.quantile(best_cos[score >= t_f1], 0.005) * 100) / 100)
    final = _model().fit(x_all, y_all, sample_weight=w_all)
    meta = {
        "fitted_on": "qqp_pairs_dev.jsonl + semantic_pairs.jsonl (split=fit)",
        "top_k": k,
        "pairs": len(y),
        "set_pairs": len(sets.y),
        "set_weight": SET_WEIGHT,
        "threshold_best_f1": t_f1,
        "rules": rule_log,
        "uncertain_gate": gate_log,
        "threshold_precision_0_80": t_p80,
        "dev_out_of_fold_best_f1": prf(score >= t_f1, right, dev.answerable),
        "dev_out_of_fold_precision_0_80": prf(score >= t_p80, right, dev.answerable),
        "set_out_of_fold": {
            "near_miss_hit_rate": float((set_oof[sets.y == 0] >= t_f1).mean()),
            "paraphrase_hit_rate": float((set_oof[sets.y == 1] >= t_f1).mean()),
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if cross is not None:
        meta["cross_encoder"] = cross.meta
    data = export_sklearn(final, threshold=t_f1, candidate_threshold=floor, rules=rules, meta=meta,
                          uncertain=UNCERTAIN, uncertain_threshold=gate,
                          cross_encoder=cross.adapter if cross is not None else None)  # fmt: skip
    out.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    return meta


def verifier_probs(split: Split, verifier: Any) -> np.ndarray:
    return np.asarray(verifier.predict(features(split)))


def lookup_sample(split: Split, n: int, seed: int = 0) -> Sequence[int]:
    rng = np.random.default_rng(seed)
    n = min(n, len(split.proto.lookups))
    picked: list[int] = rng.choice(len(split.proto.lookups), size=n, replace=False).tolist()
    return picked
