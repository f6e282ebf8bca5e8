"""The error bound on a request stream: does the served wrong-hit rate stay under what the user
set, and how close is the hit rate to the best any threshold could have had?

The stream is QQP test's lookups in file order (classes closed over both files: the labels'
best truth), each scored by the verifier against its top-5 candidates. The cache's policy
(:mod:`prsm.performance.caching.semantic._bound`) decides per lookup to serve or explore; an
explored lookup teaches it the truth (the judge comparing answers), and the application
reports on a share ``feedback`` of the served hits. The reference is the *oracle threshold*:
the lowest fixed threshold whose wrong rate over the whole stream, known in hindsight, is
under the bound — the most a threshold could serve while keeping it.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from benchmarks import _semantic_qqp as qqp
from prsm.performance.caching.semantic import _bound as bound


def _oracle(score: np.ndarray, right: np.ndarray, limit: float) -> tuple[float, int, int]:
    """(threshold, hits, correct) of the lowest threshold with wrong rate <= ``limit``."""
    order = np.argsort(-score, kind="stable")
    correct = np.cumsum(right[order])
    hits = np.arange(1, len(order) + 1)
    ok = np.nonzero((hits - correct) / hits <= limit)[0]
    if not len(ok):
        return 1.0, 0, 0
    i = int(ok[-1])
    return float(score[order][i]), int(hits[i]), int(correct[i])


def stream(
    split: qqp.Split,
    probs: np.ndarray,
    limit: float,
    *,
    feedback: float = 0.5,
    explore: float = 0.05,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    p = probs.reshape(split.top.shape)
    best = p.argmax(axis=1)
    idx = np.arange(len(best))
    score, right, entry = p[idx, best], split.right[idx, best], split.top[idx, best]
    state = bound.BoundState(limit)
    rng, app = random.Random(seed), random.Random(seed + 1)
    served = np.zeros(len(score), dtype=bool)
    explored = 0
    for j in range(len(score)):
        s = float(score[j])
        if s < 0:  # nothing over the cosine floor: a plain miss
            continue
        key, ok = int(entry[j]), bool(right[j])
        if bound.decide(state, key, s, explore_rate=explore, rng=rng):
            served[j] = True
            if app.random() < feedback:
                bound.observe(state, key, s, ok, confidence=confidence)
        else:
            explored += 1
            bound.observe(state, key, s, ok, confidence=confidence)
    hits, correct = int(served.sum()), int((served & right).sum())
    half = len(score) // 2
    late = served[half:]
    t, o_hits, o_correct = _oracle(np.where(score >= 0, score, -1.0), right, limit)
    return {
        "section": "bound", "bound": limit, "stream": len(score), "hits": hits,
        "wrong_hit_rate": (hits - correct) / hits if hits else 0.0,
        "wrong_hit_rate_second_half": float((late & ~right[half:]).sum() / max(1, late.sum())),
        "recall": correct / split.answerable, "explored": explored,
        "learned_threshold": state.threshold,
        "oracle_threshold": t, "oracle_recall": o_correct / split.answerable,
        "oracle_wrong_hit_rate": (o_hits - o_correct) / o_hits if o_hits else 0.0,
        "under_bound": hits == 0 or (hits - correct) / hits <= limit,
    }  # fmt: skip


def bound_rows(split: qqp.Split, probs: np.ndarray, fixed: float) -> list[dict[str, Any]]:
    score, right = qqp.best_of(probs, split)
    m = qqp.prf(score >= fixed, right, split.answerable)
    rows = [{"section": "bound", "bound": None, "stream": len(score), "hits": m["hits"],
             "wrong_hit_rate": 1 - m["precision"], "recall": m["recall"], "explored": 0,
             "learned_threshold": fixed}]  # fmt: skip
    rows += [stream(split, probs, limit) for limit in (0.05, 0.10, 0.20)]
    return rows
