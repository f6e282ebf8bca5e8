"""QQP pairs for the semantic benchmark: loading, the protocol's classes, cached embeddings.

The protocol is ``../shared/data/README.md``'s: cache every distinct ``a``, look up every
distinct ``b`` that is not (after folding) a cached ``a``; a hit is correct when the entry is
in the query's class (union-find over label-1 pairs after folding).

Embeddings of the questions are expensive on a small CPU (minutes per file), so they are kept
in ``$PRSM_CACHE_DIR/qqp-embeddings/`` keyed by the sha1 of each text (never committed).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prsm.performance._paths import cache_dir

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
_WS = re.compile(r"\s+")


def fold(text: str) -> str:
    """Lower-case and fold white space (the protocol's notion of "the same question")."""
    return _WS.sub(" ", text.lower()).strip()


def load_pairs(split: str, limit: int | None = None) -> list[tuple[str, str, int]]:
    """The labelled pairs of ``qqp_pairs_<split>.jsonl`` (first ``limit`` lines if given)."""
    path = DATA / f"qqp_pairs_{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the QQP data set is missing (see data/README.md)")
    out: list[tuple[str, str, int]] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            out.append((str(row["a"]), str(row["b"]), int(row["label"])))
            if limit is not None and len(out) >= limit:
                break
    return out


@dataclass
class Protocol:
    """The cached questions, the lookups, and each one's class (by the README's protocol)."""

    cached: list[str]
    lookups: list[str]
    cls_of: dict[str, int]

    def cached_class(self, i: int) -> int:
        return self.cls_of[fold(self.cached[i])]

    def lookup_class(self, j: int) -> int:
        return self.cls_of[fold(self.lookups[j])]

    def answerable(self) -> int:
        classes = {self.cached_class(i) for i in range(len(self.cached))}
        return sum(1 for j in range(len(self.lookups)) if self.lookup_class(j) in classes)


def find_root(parent: dict[str, str], x: str) -> str:
    """Union-find's root of ``x`` in ``parent`` (with path halving)."""
    parent.setdefault(x, x)
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def build_protocol(
    pairs: Sequence[tuple[str, str, int]], also_join: Sequence[tuple[str, str, int]] = ()
) -> Protocol:
    """The protocol over ``pairs``; the label-1 pairs of ``also_join`` (the other file, for
    the variant "classes closed over both files") join classes too."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        return find_root(parent, x)

    for a, b, label in (*pairs, *also_join):
        fa, fb = find(fold(a)), find(fold(b))
        if label == 1 and fa != fb:
            parent[fa] = fb
    roots: dict[str, int] = {}
    cls_of = {k: roots.setdefault(find(k), len(roots)) for k in list(parent)}
    cached = list(dict.fromkeys(a for a, _, _ in pairs))
    folded_cached = {fold(a) for a in cached}
    lookups = [b for b in dict.fromkeys(b for _, b, _ in pairs) if fold(b) not in folded_cached]
    return Protocol(cached, lookups, cls_of)


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def embedding_cache_path(split: str) -> Path:
    return cache_dir() / "qqp-embeddings" / f"{split}.npz"


def cached_embeddings(
    split: str,
    texts: Iterable[str],
    embed: Callable[[list[str]], np.ndarray],
    *,
    save: bool = True,
) -> dict[str, np.ndarray]:
    """Embeddings of ``texts`` (text → normalised float32 row), computing only missing ones."""
    path = embedding_cache_path(split)
    known: dict[str, np.ndarray] = {}
    if path.is_file():
        with np.load(path) as z:
            known = dict(zip(z["sha"].tolist(), z["emb"], strict=True))
    wanted = list(dict.fromkeys(texts))
    missing = [t for t in wanted if _sha(t) not in known]
    if missing:
        vecs = embed(missing)
        for t, v in zip(missing, vecs, strict=True):
            known[_sha(t)] = np.asarray(v, dtype=np.float32)
        if save:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            shas = np.array(list(known), dtype="<U40")
            np.savez(tmp, sha=shas, emb=np.stack(list(known.values())).astype(np.float32))
            tmp.replace(path)
    return {t: known[_sha(t)] for t in wanted}
