"""Features of a (query, cached question) pair for the verifier: what cosine misses.

Cosine similarity of sentence embeddings says two questions are about the same thing; it does
not see that one word was replaced by its opposite ("scroll up" / "scroll down"), by another
of its kind ("boil an egg" / "boil a potato"), that a direction was reversed ("Celsius to
Fahrenheit" / "turning Fahrenheit into Celsius"), or that a number, a name or a negation
changed. These features find the words that differ between the two texts and ask the
:mod:`._lexicon` (WordNet) how they relate, so they work for words nobody listed.

Cost is bounded: each side is cut to :data:`._parse.MAX_WORDS` words (:mod:`._parse`
tokenises each text once), the differing words compared pairwise are capped at
:data:`._parse.MAX_DIFF` a side, and nothing is quadratic in the text's length (tens of
microseconds a pair; the verifier runs off the event loop anyway).
"""

from __future__ import annotations

import itertools
from collections import Counter
from difflib import SequenceMatcher

from ._lexicon import ANTONYM, HYPERNYM, OTHER, SAME, SIBLING, SYNONYM, UNKNOWN, Lexicon
from ._parse import _OPPOSITE, MAX_DIFF, SOURCE, SYMMETRIC, TARGET, Parsed

FEATURE_NAMES: tuple[str, ...] = (
    "cosine",
    "cosine_gap_to_best",
    "cosine_margin_to_next",
    "rank",
    "jaccard_words",
    "jaccard_content",
    "only_min",
    "only_max",
    "only_frac",
    "synonym_pairs",
    "sub_one",
    "sub_one_antonym",
    "sub_one_sibling",
    "sub_one_hypernym",
    "sub_one_other",
    "sub_one_other_noun",
    "sub_one_other_polar",
    "sub_one_unknown",
    "sub_one_cohyponym",
    "sub_small",
    "sub_small_contrast",
    "sub_small_unknown",
    "pair_antonym",
    "pair_sibling",
    "pair_unknown",
    "qualifier_flip",
    "qualifier_one_side",
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
    "role_flip",
    "swap_around_relation",
    "exchange",
    "length_ratio",
    "length_diff",
    "lcs_ratio",
    "char3_jaccard",
    "first_word_same",
    "last_word_same",
)


_FLIP = {("src", "tgt"), ("tgt", "src"), ("left", "right"), ("right", "left")}


def _role_map(p: Parsed) -> dict[str, str]:
    """Each content word's role, for the words with exactly one ("to convert X to Y" gives
    "convert" two: it is left out)."""
    seen: dict[str, set[str]] = {}
    for k, r in p.roles:
        seen.setdefault(k, set()).add(r)
    return {k: next(iter(rs)) for k, rs in seen.items() if len(rs) == 1}


def _role_flip(a: Parsed, b: Parsed, same: dict[str, str]) -> bool:
    """Two words that trade roles: the source (or the larger) on one side is the target on
    the other, and another word goes the other way ("Celsius to Fahrenheit" / "Fahrenheit
    into Celsius"; "X heavier than Y" / "Y heavier than X")."""
    ra, rb = _role_map(a), _role_map(b)
    flips = {(r, rb[same.get(k, k)]) for k, r in ra.items() if same.get(k, k) in rb}
    flips &= _FLIP
    return any((rr, r) in flips for r, rr in flips)


def _discordance(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """Share of the pairs of shared words (the first 16) that come in another order."""
    pos_a: dict[str, int] = {}
    for i, w in enumerate(a):
        pos_a.setdefault(w, i)
    pos_b: dict[str, int] = {}
    for i, w in enumerate(b):
        pos_b.setdefault(w, i)
    shared = [w for w in pos_a if w in pos_b][:16]
    if len(shared) < 2:
        return 0.0
    seq = [pos_b[w] for w in sorted(shared, key=pos_a.__getitem__)]
    pairs = discordant = 0
    for i in range(len(seq)):
        for j in range(i + 1, len(seq)):
            pairs += 1
            discordant += seq[i] > seq[j]
    return discordant / pairs


def _swap_around_relation(a: Parsed, b: Parsed) -> bool:
    """ "X <link> Y" on one side and "Y <link> X" on the other, the two words close (at most
    three words between, none of them content words) and the link not symmetric: "miles in
    km" / "km in miles". A phrase moved whole ("in Excel, how do I ..." / "how do I ... in
    Excel") does not fire: content words stand between."""
    pa, pb = _tight_pairs(a), _tight_pairs(b)
    ra, rb = _role_map(a), _role_map(b)
    for (x, y), link in pa.items():
        if (y, x) not in pb or not (link or pb[y, x]):
            continue
        if x in ra and y in ra and (ra[x], ra[y]) == (rb.get(x), rb.get(y)):
            continue  # both keep their roles: "from Paris to London" / "to London from Paris"
        return True
    return False


def _tight_pairs(p: Parsed) -> dict[tuple[str, str], bool]:
    """Content-word pairs with at most three function words between them: whether a
    non-symmetric relational word is among those."""
    out: dict[tuple[str, str], bool] = {}
    at = [i for i, k in enumerate(p.key_at) if k]
    for i, j in itertools.pairwise(at):
        between = p.low[i + 1 : j]
        if 0 < len(between) <= 3 and not any(w in SYMMETRIC for w in between):
            key = (p.key_at[i], p.key_at[j])
            out[key] = out.get(key, False) or any(_relational(w) for w in between)
    return out


def _exchange(a: Parsed, b: Parsed) -> bool:
    """Two words or phrases trade places and nothing else moves, with no symmetric link
    ("and", "or", "vs") between them: "Why did Google acquire YouTube?" / "Why did YouTube
    acquire Google?", "Whole Foods" / "Amazon" too, but not "TCP and UDP" / "UDP and TCP"."""
    ka, kb = a.keys, b.keys
    if len(ka) != len(kb) or ka == kb or sorted(ka) != sorted(kb):
        return False
    lo = next(i for i, (x, y) in enumerate(zip(ka, kb, strict=True)) if x != y)
    hi = len(ka) - next(
        i for i, (x, y) in enumerate(zip(ka[::-1], kb[::-1], strict=True)) if x != y
    )
    ma, mb = ka[lo:hi], kb[lo:hi]
    n = len(ma)
    for lx in range(1, min(n, 4)):
        for ly in range(1, min(n - lx, 4) + 1):
            x, y, mid = ma[:lx], ma[n - ly :], ma[lx : n - ly]
            if not mid and (lx > 1 or ly > 1):
                continue  # a phrase moved to the other end ("in Excel, ..."), not a swap
            if mb[:ly] == y and mb[n - lx :] == x and mb[ly : n - lx] == mid:
                ra, rb = _role_map(a), _role_map(b)
                if all(k in ra and ra[k] == rb.get(k) for k in (*x, *y)):
                    return False  # "convert X to Y" / "convert to Y from X": roles kept
                pos = [t for t, k in enumerate(a.key_at) if k]
                between = a.low[pos[lo + lx - 1] + 1 : pos[lo + n - ly]]
                return not any(w in SYMMETRIC for w in between)
    return False


def _relational(word: str) -> bool:
    return word not in SYMMETRIC and (
        word in SOURCE or word in TARGET or word in ("than", "in", "on", "for", "per", "over")
    )


def _align(a: Parsed, b: Parsed, lex: Lexicon) -> tuple[list[str], list[str], dict[str, str], int]:
    """Content words only on each side after pairing off synonyms; the pairing; its size."""
    ca, cb = Counter(a.keys), Counter(b.keys)
    only_a = list((ca - cb).elements())[:MAX_DIFF]
    only_b = list((cb - ca).elements())[:MAX_DIFF]
    same = {k: k for k in a.keys}
    synonyms = 0
    for w in list(only_a):
        for v in only_b:
            if lex.relation(w, v) in (SAME, SYNONYM):
                only_a.remove(w)
                only_b.remove(v)
                same[w] = v
                synonyms += 1
                break
    return only_a, only_b, same, synonyms


def pair_features(
    query: Parsed,
    candidate: Parsed,
    cosine: float,
    best_cosine: float,
    lexicon: Lexicon,
    *,
    rank: int,
    next_cosine: float | None = None,
) -> list[float]:
    """The features of one pair, in :data:`FEATURE_NAMES` order."""
    q, c = query, candidate
    sq, sc = set(q.low), set(c.low)
    kq, kc = set(q.keys), set(c.keys)
    union, kunion = sq | sc, kq | kc
    only_q, only_c, same, synonyms = _align(q, c, lexicon)
    rels = [lexicon.relation(w, v) for w in only_q for v in only_c]
    one = len(only_q) == 1 and len(only_c) == 1
    rel_one = rels[0] if one else ""
    small = 1 <= len(only_q) <= 2 and 1 <= len(only_c) <= 2
    cqq, cqc = Counter(q.qualifiers), Counter(c.qualifiers)
    qual_q, qual_c = set(cqq - cqc), set(cqc - cqq)
    eq, ec = q.entities, c.entities
    negq, negc = q.negations > 0, c.negations > 0
    disc = _discordance(q.keys, c.keys)
    lq, lc = max(1, len(q.low)), max(1, len(c.low))
    lcs = SequenceMatcher(None, q.keys, c.keys, autojunk=False).ratio() if q.keys or c.keys else 1.0
    return [
        cosine,
        best_cosine - cosine,
        cosine - next_cosine if next_cosine is not None else 1.0,
        float(rank),
        len(sq & sc) / len(union) if union else 1.0,
        len(kq & kc) / len(kunion) if kunion else 1.0,
        float(min(len(only_q), len(only_c))),
        float(max(len(only_q), len(only_c))),
        (len(only_q) + len(only_c)) / max(1, len(kunion)),
        float(synonyms),
        float(one),
        float(rel_one == ANTONYM),
        float(rel_one == SIBLING),
        float(rel_one == HYPERNYM),
        float(one and rel_one not in (ANTONYM, SIBLING, HYPERNYM, UNKNOWN)),
        float(rel_one == OTHER and all(lexicon.mostly_noun(w) for w in (*only_q, *only_c))),
        float(rel_one == OTHER and all(lexicon.polar(w) for w in (*only_q, *only_c))),
        float(rel_one == UNKNOWN),
        float(rel_one == OTHER and lexicon.cohyponyms(only_q[0], only_c[0])),
        float(small),
        float(small and (ANTONYM in rels or SIBLING in rels)),
        float(small and UNKNOWN in rels),
        float(ANTONYM in rels),
        float(SIBLING in rels),
        float(UNKNOWN in rels),
        float(any(frozenset((x, y)) in _OPPOSITE for x in qual_q for y in qual_c)),
        float(bool(qual_q) != bool(qual_c)),
        float(bool(q.numbers) and bool(c.numbers) and q.numbers != c.numbers),
        float(bool(q.numbers) != bool(c.numbers)),
        float(negq != negc),
        float(negq != negc and kq == kc),
        float(max(len(eq - ec), len(ec - eq))),
        float(len(eq ^ ec)),
        float(bool(eq - ec) and bool(ec - eq)),
        float(bool(eq - ec) and bool(ec - eq) and (kq - eq) == (kc - ec)),
        float(q.wh != c.wh),
        disc,
        float(Counter(q.keys) == Counter(c.keys) and q.keys != c.keys and len(kq) > 1),
        float(_role_flip(q, c, same)),
        float(_swap_around_relation(q, c)),
        float(_exchange(q, c)),
        min(lq, lc) / max(lq, lc),
        float(abs(lq - lc)),
        lcs,
        len(q.char3 & c.char3) / max(1, len(q.char3 | c.char3)),
        float(bool(q.low) and bool(c.low) and q.low[0] == c.low[0]),
        float(bool(q.low) and bool(c.low) and q.low[-1] == c.low[-1]),
    ]
