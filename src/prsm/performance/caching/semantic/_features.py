"""Features of a (query, cached question) pair for the verifier: what cosine misses.

Cosine similarity of sentence embeddings says two questions are about the same thing; it
does not see that they differ in an entity ("capital of France" / "of Germany"), a number,
a negation or a direction ("Celsius to Fahrenheit" / "Fahrenheit to Celsius"). These
features measure exactly those differences, plus lexical overlap and length, and are cheap
(tens of microseconds a pair).
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

import numpy as np

_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?|\d+(?:[.,]\d+)*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


NEGATIONS = _words(
    "not no never none nobody nothing nowhere neither nor without cannot can't don't "
    "doesn't didn't isn't aren't wasn't weren't won't wouldn't shouldn't couldn't hasn't "
    "haven't hadn't mustn't"
)
STOPWORDS = _words(
    "a an the of to in on for at by with from and or but is are was were be been being am "
    "do does did doing have has had having i me my we our you your he she it its they them "
    "their this that these those what which who whom whose how why when where there here "
    "can could should would will shall may might must if then than so as about into over "
    "after before some any all most more very much many such just also only own same other "
    "s t get got best good way ways"
)
WH = ("what", "how", "why", "when", "where", "which", "who", "whom", "whose")
DIRECTION = frozenset(
    ["to", "from", "into", "than", "versus", "vs", "over", "under", "before", "after"]
)

FEATURE_NAMES: tuple[str, ...] = (
    "cosine",
    "cosine_gap_to_best",
    "cosine_margin_to_next",
    "rank",
    "jaccard_words",
    "jaccard_content",
    "content_only_min",
    "content_only_max",
    "content_only_sum_frac",
    "number_mismatch",
    "number_one_side",
    "negation_mismatch",
    "negation_only_diff",
    "entity_only_max",
    "entity_only_sum",
    "entity_swap",
    "entity_only_swap",
    "wh_differs",
    "order_discordance",
    "same_bag_diff_order",
    "direction_swap",
    "length_ratio",
    "length_diff",
    "seq_ratio",
    "char3_jaccard",
    "first_word_same",
    "last_word_same",
)


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text)


def _discordance(a: list[str], b: list[str]) -> float:
    """Fraction of shared-word pairs whose order differs between ``a`` and ``b``."""
    pos_a: dict[str, int] = {}
    for i, w in enumerate(a):
        pos_a.setdefault(w, i)
    pos_b: dict[str, int] = {}
    for i, w in enumerate(b):
        pos_b.setdefault(w, i)
    shared = [w for w in pos_a if w in pos_b]
    if len(shared) < 2:
        return 0.0
    seq = [pos_b[w] for w in sorted(shared, key=pos_a.__getitem__)]
    pairs = discordant = 0
    for i in range(len(seq)):
        for j in range(i + 1, len(seq)):
            pairs += 1
            discordant += seq[i] > seq[j]
    return discordant / pairs


def _around(words: list[str]) -> dict[str, tuple[set[str], set[str]]]:
    """For each direction word: the two content words before it and the two after it."""
    out: dict[str, tuple[set[str], set[str]]] = {}
    for i, w in enumerate(words):
        if w in DIRECTION and w not in out:
            before = {x for x in words[max(0, i - 2) : i] if x not in DIRECTION}
            after = {x for x in words[i + 1 : i + 3] if x not in DIRECTION}
            out[w] = (before, after)
    return out


def _direction_swap(a: list[str], b: list[str]) -> bool:
    """ "X to Y" in one and "Y to X" in the other (also from/into/than/...)."""
    around_b = _around(b)
    for w, (before_a, after_a) in _around(a).items():
        if w in around_b:
            before_b, after_b = around_b[w]
            if before_a & after_b and after_a & before_b:
                return True
    return False


def _char3(text: str) -> set[str]:
    t = f" {text} "
    return {t[i : i + 3] for i in range(len(t) - 2)}


def _entities(raw: list[str]) -> set[str]:
    """Capitalised words past the first (names, places) and numbers, lower-cased."""
    out = {w.lower() for w in raw[1:] if w[:1].isupper() and w.lower() not in STOPWORDS}
    out |= {w for w in raw if _NUMBER.fullmatch(w)}
    return out


def pair_features(
    query: str,
    candidate: str,
    cosine: float,
    best_cosine: float,
    *,
    rank: int,
    next_cosine: float | None = None,
) -> list[float]:
    """The hand-made features of one pair, in :data:`FEATURE_NAMES` order."""
    raw_q, raw_c = _tokens(query), _tokens(candidate)
    q = [w.lower() for w in raw_q]
    c = [w.lower() for w in raw_c]
    sq, sc = set(q), set(c)
    cq = {w for w in sq if w not in STOPWORDS}
    cc = {w for w in sc if w not in STOPWORDS}
    union = sq | sc
    cunion = cq | cc
    only_q, only_c = len(cq - cc), len(cc - cq)
    nq = {w for w in q if _NUMBER.fullmatch(w)}
    nc = {w for w in c if _NUMBER.fullmatch(w)}
    negq = sum(w in NEGATIONS or w.endswith("n't") for w in q)
    negc = sum(w in NEGATIONS or w.endswith("n't") for w in c)
    eq, ec = _entities(raw_q), _entities(raw_c)
    whq = next((w for w in q if w in WH), "")
    whc = next((w for w in c if w in WH), "")
    ql, cl = query.lower().strip(), candidate.lower().strip()
    c3q, c3c = _char3(ql), _char3(cl)
    lq, lc = max(1, len(q)), max(1, len(c))
    content_q = [w for w in q if w not in STOPWORDS or w in DIRECTION]
    content_c = [w for w in c if w not in STOPWORDS or w in DIRECTION]
    return [
        cosine,
        best_cosine - cosine,
        cosine - next_cosine if next_cosine is not None else 1.0,
        float(rank),
        len(sq & sc) / len(union) if union else 1.0,
        len(cq & cc) / len(cunion) if cunion else 1.0,
        float(min(only_q, only_c)),
        float(max(only_q, only_c)),
        (only_q + only_c) / max(1, len(cunion)),
        float(bool(nq) and bool(nc) and nq != nc),
        float(bool(nq) != bool(nc)),
        float((negq > 0) != (negc > 0)),
        float((negq > 0) != (negc > 0) and (cq - NEGATIONS) == (cc - NEGATIONS)),
        float(max(len(eq - ec), len(ec - eq))),
        float(len(eq ^ ec)),
        float(bool(eq - ec) and bool(ec - eq)),
        float(bool(eq - ec) and bool(ec - eq) and (cq - eq) == (cc - ec)),
        float(whq != whc),
        _discordance(content_q, content_c),
        float(cq == cc and content_q != content_c and len(cq) > 1),
        float(_direction_swap(content_q, content_c)),
        min(lq, lc) / max(lq, lc),
        float(abs(lq - lc)),
        SequenceMatcher(None, ql, cl, autojunk=False).ratio(),
        len(c3q & c3c) / max(1, len(c3q | c3c)),
        float(bool(q) and bool(c) and q[0] == c[0]),
        float(bool(q) and bool(c) and q[-1] == c[-1]),
    ]


def embedding_features(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Element-wise product and absolute difference of two unit vectors (rows)."""
    u2 = np.atleast_2d(u)
    v2 = np.atleast_2d(v)
    return np.hstack([u2 * v2, np.abs(u2 - v2)]).astype(np.float32)
