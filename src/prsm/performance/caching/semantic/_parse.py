"""Texts tokenised once for the verifier's pair features: words, content keys, roles.

:func:`parse` cuts a text to :data:`MAX_WORDS` words and records what :mod:`._features`
compares: the content words as dictionary forms (through the :mod:`._lexicon`), qualifiers,
numbers, negations, capitalised names, and the roles words play around "from", "to" and
"than" ("Celsius to Fahrenheit": Celsius the source, Fahrenheit the target).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._lexicon import Lexicon

MAX_WORDS = 64
MAX_DIFF = 6
MAX_CHARS = 400

_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?|\d+(?:[.,]\d+)*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_ARROW = re.compile(r"\s*(?:->|→|=>|⇒)\s*")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


NEGATIONS = _words(
    "not no never none nobody nothing nowhere neither nor without cannot can't don't "
    "doesn't didn't isn't aren't wasn't weren't won't wouldn't shouldn't couldn't hasn't "
    "haven't hadn't mustn't"
)
#: closed-class words: they carry the grammar, not what is asked about
FUNCTION = _words(
    "a an the of for at by with and or but nor so yet is are was were be been being am do does "
    "did doing have has having i me my mine myself we us our ours you your yours he him his she "
    "her hers it its they them their theirs this that these those there here what which who "
    "whom whose how why when where can could should would will shall may might must if then as "
    "about s t ll ve re d m please thanks thank any some such just also very really actually "
    "ever one ones someone something anyone anything way ways possible is it's i'm what's "
    "how's where's there's let's via using use"
)
#: closed-class opposites (WordNet lists few of them); a swap of one for its pair flips meaning
QUALIFIER_PAIRS = (
    ("up", "down"), ("in", "out"), ("on", "off"), ("over", "under"), ("above", "below"),
    ("before", "after"), ("inside", "outside"), ("forward", "backward"),
    ("forwards", "backwards"), ("upward", "downward"), ("upstairs", "downstairs"),
    ("into", "out"), ("more", "less"), ("more", "fewer"), ("most", "least"), ("with", "without"),
    ("always", "never"), ("all", "none"), ("everything", "nothing"), ("same", "different"),
)  # fmt: skip
QUALIFIERS = frozenset(w for pair in QUALIFIER_PAIRS for w in pair)
_OPPOSITE = {frozenset(p) for p in QUALIFIER_PAIRS}
#: words that give the phrase after them a role: where from, where to, compared with what
SOURCE = frozenset({"from"})
TARGET = frozenset({"to", "into", "onto", "toward", "towards"})
THAN = "than"
#: symmetric links: "X and Y", "X vs Y" ask the same as "Y and X", "Y vs X"
SYMMETRIC = _words("and or vs versus between with compared compare difference differences")
WH = ("what", "how", "why", "when", "where", "which", "who", "whom", "whose")


@dataclass(frozen=True, slots=True)
class Parsed:
    """One text, tokenised once (the query's parse is reused for every candidate)."""

    raw: tuple[str, ...]  # word tokens as written (capped)
    low: tuple[str, ...]  # lower-cased
    keys: tuple[str, ...]  # content words as dictionary forms, in order
    key_at: tuple[str, ...]  # per token: its content key, or "" for other words
    qualifiers: tuple[str, ...]
    numbers: frozenset[str]
    negations: int
    entities: frozenset[str]
    roles: tuple[tuple[str, str], ...]  # (content key, "src" | "tgt" | "left" | "right")
    char3: frozenset[str]
    wh: str


def parse(text: str, lexicon: Lexicon) -> Parsed:
    """Tokenise ``text`` (its first :data:`MAX_WORDS` words) for the pair features."""
    raw = _WORD.findall(_ARROW.sub(" to ", text[: MAX_WORDS * 12]))[:MAX_WORDS]
    low = [w.lower() for w in raw]
    keys: list[str] = []
    key_at: dict[int, str] = {}
    for i, w in enumerate(low):
        if w in FUNCTION or w in QUALIFIERS or w in NEGATIONS or w in SOURCE or w in TARGET:
            continue
        if w == THAN or _NUMBER.fullmatch(w):
            continue
        lemmas = lexicon.lemmas(w)
        key = lemmas[0] if lemmas else w
        keys.append(key)
        key_at[i] = key
    entities = {
        w.lower() for w in raw[1:] if any(ch.isupper() for ch in w) and w.lower() not in FUNCTION
    }
    entities |= {w for w in raw if _NUMBER.fullmatch(w)}
    t = " ".join(low)[:MAX_CHARS]
    padded = f" {t} "
    return Parsed(
        raw=tuple(raw),
        low=tuple(low),
        keys=tuple(keys),
        key_at=tuple(key_at.get(i, "") for i in range(len(low))),
        qualifiers=tuple(w for w in low if w in QUALIFIERS),
        numbers=frozenset(w for w in low if _NUMBER.fullmatch(w)),
        negations=sum(w in NEGATIONS or w.endswith("n't") for w in low),
        entities=frozenset(entities),
        roles=tuple(_roles(low, key_at)),
        char3=frozenset(padded[i : i + 3] for i in range(len(padded) - 2)),
        wh=next((w for w in low if w in WH), ""),
    )


def _phrase(key_at: dict[int, str], start: int, step: int, low: list[str]) -> list[str]:
    """Up to three content keys from ``start`` going ``step`` (+1/-1), stopping at a
    function word, a role word or the end."""
    out: list[str] = []
    i = start
    while 0 <= i < len(low) and len(out) < 3:
        if i in key_at:
            out.append(key_at[i])
        elif low[i] not in ("a", "an", "the", "my", "your", "our", "their", "his", "her", "its"):
            break
        i += step
    return out


def _roles(low: list[str], key_at: dict[int, str]) -> list[tuple[str, str]]:
    roles: list[tuple[str, str]] = []
    has_from = any(w in SOURCE for w in low)
    for i, w in enumerate(low):
        if w in SOURCE:
            roles += [(k, "src") for k in _phrase(key_at, i + 1, 1, low)]
            roles += [(k, "tgt") for k in _phrase(key_at, i - 1, -1, low)] if not any(
                x in TARGET for x in low[:i]) else []  # "Fahrenheit from Celsius"  # fmt: skip
        elif w in TARGET:
            roles += [(k, "tgt") for k in _phrase(key_at, i + 1, 1, low)]
            if not has_from:
                roles += [(k, "src") for k in _phrase(key_at, i - 1, -1, low)]
        elif w == THAN:
            roles += [(k, "left") for k in _phrase(key_at, i - 1, -1, low)]
            roles += [(k, "right") for k in _phrase(key_at, i + 1, 1, low)]
    return roles
