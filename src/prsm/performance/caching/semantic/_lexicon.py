"""How two English words relate, from WordNet 3.0: the verifier's word knowledge.

Two questions that differ in one word ask the same thing only when the two words mean the
same ("buy" / "purchase"); an antonym ("buy" / "sell"), a sibling ("laptop" / "desktop",
"cat" / "dog") or an unrelated word makes another question. :meth:`Lexicon.relation` answers
which, for any pair of the ~150k words WordNet knows, so the verifier's rules are not limited
to the words someone thought of listing.

The data (``lexicon.json.gz`` beside this module, ~2 MB) is built from WordNet's database by
``python -m benchmarks.semantic --build-lexicon``; it is JSON, loaded on first use, and held
as numpy arrays (a few tens of MB).
"""

from __future__ import annotations

import gzip
import json
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError

DEFAULT_PATH = Path(__file__).with_name("lexicon.json.gz")
FORMAT = "prsm-semantic-lexicon/1"

SAME = "same"
SYNONYM = "synonym"  # a shared synset, an adjective cluster, or one derivation family
ANTONYM = "antonym"
HYPERNYM = "hypernym"  # one is a kind of the other (up to three levels)
SIBLING = "sibling"  # two kinds of one thing (nouns with a specific shared parent/grandparent)
OTHER = "other"  # both known, none of the above
UNKNOWN = "unknown"  # at least one word is not in WordNet
RELATIONS = (SAME, SYNONYM, ANTONYM, HYPERNYM, SIBLING, OTHER, UNKNOWN)
#: a shared ancestor this far from the top is a kind ("dish", "feline"), not a category
#: too broad to make two words siblings ("communication", "time period")
SIBLING_DEPTH = 5
#: an adjective cluster this large is a category ("chromatic": every colour), not a meaning
CLUSTER_SIZE = 45

#: irregular forms WordNet's exception lists would give (the bundled data has none)
IRREGULAR = {
    "went": "go", "gone": "go", "bought": "buy", "sold": "sell", "made": "make",
    "taken": "take", "took": "take", "gave": "give", "given": "give", "got": "get",
    "gotten": "get", "ran": "run", "written": "write", "wrote": "write", "ate": "eat",
    "eaten": "eat", "drove": "drive", "driven": "drive", "flew": "fly", "flown": "fly",
    "knew": "know", "known": "know", "thought": "think", "brought": "bring",
    "taught": "teach", "caught": "catch", "found": "find", "told": "tell", "said": "say",
    "paid": "pay", "left": "leave", "lost": "lose", "won": "win", "began": "begin",
    "begun": "begin", "broke": "break", "broken": "break", "chose": "choose",
    "chosen": "choose", "felt": "feel", "kept": "keep", "meant": "mean", "met": "meet",
    "sent": "send", "spent": "spend", "stood": "stand", "understood": "understand",
    "became": "become", "built": "build", "held": "hold", "led": "lead", "grew": "grow",
    "grown": "grow", "drew": "draw", "drawn": "draw", "fell": "fall", "fallen": "fall",
    "froze": "freeze", "frozen": "freeze", "children": "child", "men": "man",
    "women": "woman", "people": "person", "mice": "mouse", "feet": "foot", "teeth": "tooth",
    "geese": "goose", "better": "good", "best": "good", "worse": "bad", "worst": "bad",
    "is": "be", "are": "be", "was": "be", "were": "be", "been": "be", "has": "have",
    "had": "have", "does": "do", "did": "do", "done": "do",
}  # fmt: skip
_NOUN = (("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
         ("men", "man"), ("ies", "y"), ("s", ""))  # fmt: skip
_VERB = (("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"),
         ("ing", ""), ("s", ""))  # fmt: skip
_ADJ = (("er", ""), ("est", ""), ("er", "e"), ("est", "e"), ("ier", "y"), ("iest", "y"))
_VOWELS = frozenset("aeiou")


class Lexicon:
    """Word relations from the packaged WordNet extract (see module docstring)."""

    def __init__(self, data: dict[str, Any], where: str = "lexicon") -> None:
        if data.get("format") != FORMAT:
            raise ConfigError(where, f"not a {FORMAT} file (format={data.get('format')!r})")
        words = data["words"].split("\n")
        self._index = {w: i for i, w in enumerate(words)}
        self._senses = _csr(data["senses"])
        self._hyper = _csr(data["hyper"])
        head = np.arange(len(data["hyper"]), dtype=np.int32)
        for k, v in data["head"].items():
            head[int(k)] = v
        self._head = head
        self._cluster = np.bincount(head, minlength=len(head))  # satellites per head (+1)
        self._ant = {(int(a), int(b)) for a, b in data["ant"]}
        self._polar = {x for pair in self._ant for x in pair}
        self._family = np.asarray(data["family"], dtype=np.int32)
        self._verbs_from = int(data["pos_start"]["v"])  # nouns are the synsets before it
        self._depth = np.asarray(data["depth"], dtype=np.int16)
        self.relation = lru_cache(maxsize=65_536)(self._relation)
        self.lemmas = lru_cache(maxsize=65_536)(self._lemmas)

    def __contains__(self, word: str) -> bool:
        return bool(self.lemmas(word))

    def __len__(self) -> int:
        return len(self._index)

    def _lemmas(self, word: str) -> tuple[str, ...]:
        """The dictionary forms of ``word`` that WordNet knows (itself first if known)."""
        w = word.lower()
        out: list[str] = []
        for cand in (w, IRREGULAR.get(w, "")):
            if cand and cand in self._index and cand not in out:
                out.append(cand)
        for suffixes in (_NOUN, _VERB, _ADJ):
            for suf, rep in suffixes:
                if w.endswith(suf) and len(w) > len(suf) + 1:
                    stem = w[: -len(suf)] + rep
                    for cand in (stem, _undouble(stem)):
                        if cand and cand in self._index and cand not in out:
                            out.append(cand)
        return tuple(out)

    def _synsets(self, lemmas: tuple[str, ...]) -> set[int]:
        out: set[int] = set()
        for w in lemmas:
            i = self._index[w]
            out.update(self._senses[1][self._senses[0][i] : self._senses[0][i + 1]].tolist())
        return out

    def polar(self, word: str) -> bool:
        """Whether the word sits on a scale WordNet knows an opposite end of ("local",
        "remote", "calm": they have antonyms), so another such word in its place likely
        moves along the scale."""
        senses = self._synsets(self.lemmas(word))
        return any(s in self._polar or int(self._head[s]) in self._polar for s in senses)

    def mostly_noun(self, word: str) -> bool:
        """Whether most of the word's senses are nouns ("laptop", "phone"; not "local")."""
        senses = self._synsets(self.lemmas(word))
        return bool(senses) and 2 * sum(s < self._verbs_from for s in senses) > len(senses)

    def cohyponyms(self, a: str, b: str) -> bool:
        """Whether two words have noun senses with one direct parent, however general that
        parent is ("today" / "tomorrow" under *day*, "morning" / "evening" under *time
        period*): two points of one scale or two members of one set, which :meth:`relation`
        calls *other* when the parent is too general to make them siblings."""
        la, lb = self.lemmas(a), self.lemmas(b)
        if not la or not lb or set(la) & set(lb):
            return False
        nouns_a = {s for s in self._synsets(la) if s < self._verbs_from}
        nouns_b = {s for s in self._synsets(lb) if s < self._verbs_from}
        if not nouns_a or not nouns_b or nouns_a & nouns_b:
            return False
        return bool(self._ancestors(nouns_a, 1)[0] & self._ancestors(nouns_b, 1)[0])

    def _families(self, lemmas: tuple[str, ...]) -> set[int]:
        return {int(f) for w in lemmas if (f := self._family[self._index[w]]) >= 0}

    def _ancestors(self, synsets: set[int], depth: int) -> list[set[int]]:
        """``[parents, grandparents, ...]`` of the synsets, ``depth`` levels."""
        levels: list[set[int]] = []
        frontier = synsets
        off, flat = self._hyper
        for _ in range(depth):
            nxt: set[int] = set()
            for s in frontier:
                nxt.update(flat[off[s] : off[s + 1]].tolist())
            levels.append(nxt)
            frontier = nxt
        return levels

    def _relation(self, a: str, b: str) -> str:
        """One of :data:`RELATIONS` for two words (symmetric)."""
        if a.lower() == b.lower():
            return SAME
        if _morphological_opposites(a.lower(), b.lower(), self._index):
            return ANTONYM
        la, lb = self.lemmas(a), self.lemmas(b)
        if not la or not lb:
            return UNKNOWN
        if set(la) & set(lb):
            return SAME
        sa, sb = self._synsets(la), self._synsets(lb)
        if sa & sb:
            return SYNONYM
        ha = {int(self._head[s]) for s in sa}
        hb = {int(self._head[s]) for s in sb}
        if any((min(x, y), max(x, y)) in self._ant for x in ha | sa for y in hb | sb):
            return ANTONYM
        if ha & sb or hb & sa or self._families(la) & self._families(lb):
            return SYNONYM  # one is "similar to" the other ("quick" ~ "fast"), or one stem
        if ha & hb:  # two satellites of one head: near-synonyms, unless the cluster is a
            big = any(self._cluster[h] > CLUSTER_SIZE for h in ha & hb)  # whole category
            return SIBLING if big else SYNONYM
        up_a, up_b = self._ancestors(sa, 3), self._ancestors(sb, 3)
        if sa & set().union(*up_b) or sb & set().union(*up_a):
            return HYPERNYM
        shared = (up_a[0] | up_a[1]) & (up_b[0] | up_b[1])
        if any(s < self._verbs_from and self._depth[s] >= SIBLING_DEPTH for s in shared):
            return SIBLING
        return OTHER


#: negating prefixes ("mute" / "unmute") and prefix pairs ("encrypt" / "decrypt",
#: "upload" / "download"): English morphology, a closed set
_NEGATING = ("un", "non", "anti", "counter")
#: these also start many unrelated words ("inform", "depart"): trusted only for words
#: WordNet does not know ("dislike" is known, "disinstall" is not)
_NEGATING_WEAK = ("dis", "de", "in", "im", "il", "ir")
_PREFIX_PAIRS = (
    ("en", "de"), ("up", "down"), ("in", "out"), ("over", "under"), ("im", "ex"), ("pre", "post"),
)  # fmt: skip


def _morphological_opposites(a: str, b: str, known: dict[str, int]) -> bool:
    """ "mute" / "unmute", "install" / "uninstall", "encrypt" / "decrypt", "upload" /
    "download", "import" / "export" (the stem left must be a word of 3+ letters)."""
    for x, y in ((a, b), (b, a)):
        for pre in _NEGATING:
            if y == pre + x and len(x) >= 3:
                return True
        for pre in _NEGATING_WEAK:
            if y == pre + x and len(x) >= 3 and y not in known:
                return True
        for p, q in _PREFIX_PAIRS:
            stem = x[len(p) :]
            if x.startswith(p) and y.startswith(q) and stem == y[len(q) :] and len(stem) >= 3:
                return True
    return False


def _undouble(stem: str) -> str:
    """ "runn" -> "run" (a doubled final consonant before -ing/-ed/-er)."""
    if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in _VOWELS:
        return stem[:-1]
    return ""


def _csr(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in rows])
    flat = np.fromiter((x for r in rows for x in r), dtype=np.int32, count=int(offsets[-1]))
    return offsets, flat


_loaded: dict[Path, Lexicon] = {}
_lock = threading.Lock()


def load_lexicon(path: str | Path | None = None) -> Lexicon:
    """The packaged lexicon (or the one at ``path``), loaded once per process."""
    p = Path(path) if path is not None else DEFAULT_PATH
    with _lock:
        lex = _loaded.get(p)
        if lex is None:
            try:
                data = json.loads(gzip.decompress(p.read_bytes()))
            except FileNotFoundError:
                raise ConfigError("lexicon_path", f"no such file: {p}") from None
            except (OSError, json.JSONDecodeError) as exc:
                raise ConfigError(
                    "lexicon_path", f"{p}: not a gzipped JSON lexicon: {exc}"
                ) from exc
            lex = _loaded[p] = Lexicon(data, f"lexicon_path ({p})")
        return lex
