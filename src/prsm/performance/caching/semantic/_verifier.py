"""The verification step after the vector search: is the cached question really the same?

A small gradient-boosted tree model over :mod:`._features` (cosine, its gap to the best
candidate, how the differing words relate by WordNet, direction and role swaps, number /
negation / entity differences, overlap, length) scores each candidate; the most probable one
is served if its probability passes the threshold. On top of the model, *rules* veto a pair
outright when a binary feature fires (a word replaced by its antonym or a sibling, a
direction reversed, a number changed, ...); which rules apply is decided at fitting time.
The model is fitted on QQP *dev* and the fitting split of the project's own near-miss and
paraphrase sets only (``python -m benchmarks.semantic --fit``) and shipped as JSON
(``verifier.json`` beside this module; no pickle): every tree's nodes as flat arrays.
Scoring walks all trees at once with numpy; the features' cost is capped per pair, so a
lookup's verification is bounded whatever the prompt's length (the cache runs it in a worker
thread, never on the event loop).

Optionally (``verifier-cross.json``, ``SemanticSettings(cross_encoder=True)``) one more
feature: the probability of a fine-tuned MiniLM cross-encoder (:mod:`._cross`) that reads
both questions at once; it is computed for the candidates no rule vetoes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError
from ._cross import CrossEncoder
from ._features import FEATURE_NAMES, pair_features
from ._lexicon import Lexicon, load_lexicon
from ._parse import Parsed, parse

DEFAULT_PATH = Path(__file__).with_name("verifier.json")
#: the verifier fitted with the cross-encoder's probability as one more feature
CROSS_PATH = Path(__file__).with_name("verifier-cross.json")
FORMAT = "prsm-semantic-verifier/2"
CROSS_FEATURE = "cross_encoder"


@dataclass(frozen=True, slots=True, eq=False)
class Verifier:
    """A fitted tree ensemble: P(same question | pair features)."""

    feature: np.ndarray  # per node: feature index (-1 at leaves)
    threshold_at: np.ndarray  # per node: go left when x <= this
    left: np.ndarray  # per node: left child (global node index; self at leaves)
    right: np.ndarray
    value: np.ndarray  # per node: leaf value (0 elsewhere)
    roots: np.ndarray  # per tree: root node index
    depth: int
    baseline: float
    rules: np.ndarray  # feature indices whose firing (> 0.5) vetoes the pair
    threshold: float  # probability a candidate must reach (chosen on dev)
    candidate_threshold: float  # cosine floor for candidates (chosen on dev)
    meta: dict[str, Any]
    #: pairs where one of these fires (one word replaced by one WordNet cannot relate to it)
    #: must reach ``uncertain_threshold``; below it their probability is 0
    uncertain: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    uncertain_threshold: float = 0.0
    #: scores (query, candidate) pairs: the model's last feature column when set
    cross_encoder: CrossEncoder | None = None

    @classmethod
    def from_json(
        cls, data: dict[str, Any], where: str = "verifier", folder: Path | None = None
    ) -> Verifier:
        if data.get("format") != FORMAT:
            raise ConfigError(where, f"not a {FORMAT} file (format={data.get('format')!r})")
        cross = data.get("cross_encoder")
        names = [*FEATURE_NAMES, CROSS_FEATURE] if cross else list(FEATURE_NAMES)
        if list(data.get("features", ())) != names:
            raise ConfigError(where, "fitted on other features; refit it with --fit")
        encoder = None
        if cross:
            adapter = Path(cross["adapter"])
            encoder = CrossEncoder(adapter if adapter.is_absolute() else
                                   (folder or DEFAULT_PATH.parent) / adapter)  # fmt: skip
        feature: list[int] = []
        left: list[int] = []
        right: list[int] = []
        roots: list[int] = []
        thr: list[float] = []
        value: list[float] = []
        depth = 0
        for tree in data["trees"]:
            base = len(feature)
            roots.append(base)
            n = len(tree["feature"])
            for i in range(n):
                leaf = bool(tree["leaf"][i])
                feature.append(-1 if leaf else int(tree["feature"][i]))
                thr.append(float(tree["threshold"][i]))
                left.append(base + i if leaf else base + int(tree["left"][i]))
                right.append(base + i if leaf else base + int(tree["right"][i]))
                value.append(float(tree["value"][i]) if leaf else 0.0)
            depth = max(depth, int(tree["depth"]))
        return cls(
            feature=np.asarray(feature, dtype=np.int64),
            threshold_at=np.asarray(thr, dtype=np.float64),
            left=np.asarray(left, dtype=np.int64),
            right=np.asarray(right, dtype=np.int64),
            value=np.asarray(value, dtype=np.float64),
            roots=np.asarray(roots, dtype=np.int64),
            depth=depth,
            baseline=float(data["baseline"]),
            rules=np.asarray(
                [FEATURE_NAMES.index(r) for r in data.get("rules", ())], dtype=np.int64
            ),
            threshold=float(data["threshold"]),
            candidate_threshold=float(data["candidate_threshold"]),
            meta=dict(data.get("meta", {})),
            uncertain=np.asarray(
                [FEATURE_NAMES.index(u) for u in data.get("uncertain", ())], dtype=np.int64
            ),
            uncertain_threshold=float(data.get("uncertain_threshold", 0.0)),
            cross_encoder=encoder,
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> Verifier:
        """The shipped model, or the one at ``path``."""
        p = Path(path) if path is not None else DEFAULT_PATH
        return cls.from_json(read_json(p), f"verifier_path ({p})", folder=p.parent)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """P(same) for each row of ``features`` (columns in FEATURE_NAMES order)."""
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        rows = np.arange(len(x))[:, None]
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        for _ in range(self.depth):
            feat = self.feature[node]
            go_left = x[rows, np.maximum(feat, 0)] <= self.threshold_at[node]
            node = np.where(go_left, self.left[node], self.right[node])
        raw = self.baseline + self.value[node].sum(axis=1)
        out: np.ndarray = 0.5 * (1.0 + np.tanh(raw / 2.0))  # the logistic, without overflow
        if len(self.rules):
            out[(x[:, self.rules] > 0.5).any(axis=1)] = 0.0
        if len(self.uncertain):
            gated = (x[:, self.uncertain] > 0.5).any(axis=1) & (out < self.uncertain_threshold)
            out[gated] = 0.0
        return out

    @property
    def lexicon(self) -> Lexicon:
        """The WordNet extract the features read (loaded once per process, on first use)."""
        return load_lexicon(self.meta.get("lexicon_path"))

    def warm(self) -> None:
        """Load the lexicon (and the cross-encoder) now (the cache does it in its worker
        thread at start)."""
        load_lexicon(self.meta.get("lexicon_path"))
        if self.cross_encoder is not None:
            self.cross_encoder.load()

    def parse(self, text: str) -> Parsed:
        return parse(text, self.lexicon)

    def features(self, query: str | Parsed, candidates: Sequence[str | Parsed],
                 cosines: Sequence[float]) -> np.ndarray:  # fmt: skip
        """The feature rows of ``query`` against each candidate (best-first by cosine)."""
        lex = self.lexicon
        q = query if isinstance(query, Parsed) else parse(query, lex)
        cos = [float(c) for c in cosines]
        best = max(cos) if cos else 0.0
        rows = [
            pair_features(
                q,
                cand if isinstance(cand, Parsed) else parse(cand, lex),
                c,
                best,
                lex,
                rank=rank,
                next_cosine=cos[rank + 1] if rank + 1 < len(cos) else None,
            )
            for rank, (cand, c) in enumerate(zip(candidates, cos, strict=True))
        ]
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))

    def score(self, query: str | Parsed, candidates: Sequence[str | Parsed],
              cosines: Sequence[float]) -> np.ndarray:  # fmt: skip
        """P(same question) for each candidate, given best-first by cosine (all top-k)."""
        x = self.features(query, candidates, cosines)
        if self.cross_encoder is not None:
            x = np.column_stack([x, self.cross_scores(x, query, candidates)])
        return self.predict(x)

    def cross_scores(self, x: np.ndarray, query: str | Parsed,
                     candidates: Sequence[str | Parsed]) -> np.ndarray:  # fmt: skip
        """The cross-encoder's column: its probability for the rows no rule vetoes (0 for
        those, whose score is 0 whatever it says)."""
        assert self.cross_encoder is not None
        col = np.zeros(len(x))
        live: np.ndarray = np.ones(len(x), dtype=bool)
        if len(self.rules):
            live = np.asarray(~(x[:, self.rules] > 0.5).any(axis=1), dtype=bool)
        if live.any():
            keep = [bool(v) for v in live]
            texts = [_text(c) for c, ok in zip(candidates, keep, strict=True) if ok]
            col[live] = self.cross_encoder.score(_text(query), texts)
        return col


def read_json(path: Path) -> dict[str, Any]:
    """A verifier file's JSON; a missing or broken file is a ``verifier_path`` error."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("verifier_path", f"no such file: {path}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError("verifier_path", f"{path}: not JSON: {exc}") from exc
    return data


def _text(item: str | Parsed) -> str:
    if not isinstance(item, str):
        raise TypeError("the cross-encoder reads the texts: pass strings, not parsed texts")
    return item


def export_sklearn(model: Any, *, threshold: float, candidate_threshold: float,
                   rules: Sequence[str] = (), meta: dict[str, Any],
                   uncertain: Sequence[str] = (),
                   uncertain_threshold: float = 0.0,
                   cross_encoder: str | None = None) -> dict[str, Any]:  # fmt: skip
    """A fitted ``HistGradientBoostingClassifier`` as this module's JSON format (with
    ``cross_encoder``, the adapter's file name: the model's last feature is its probability)."""
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        trees.append(
            {
                "feature": nodes["feature_idx"].tolist(),
                "threshold": nodes["num_threshold"].tolist(),
                "left": nodes["left"].tolist(),
                "right": nodes["right"].tolist(),
                "value": nodes["value"].tolist(),
                "leaf": nodes["is_leaf"].astype(int).tolist(),
                "depth": int(nodes["depth"].max()),
            }
        )
    return {
        "format": FORMAT,
        "features": [*FEATURE_NAMES, CROSS_FEATURE] if cross_encoder else list(FEATURE_NAMES),
        "cross_encoder": {"adapter": cross_encoder} if cross_encoder else None,
        "baseline": float(np.ravel(model._baseline_prediction)[0]),
        "threshold": threshold,
        "candidate_threshold": candidate_threshold,
        "rules": list(rules),
        "uncertain": list(uncertain),
        "uncertain_threshold": uncertain_threshold,
        "trees": trees,
        "meta": meta,
    }
