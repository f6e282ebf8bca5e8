"""The verifier cascade: the cross-encoder only where the plain verifier is unsure.

The plain verifier (``verifier.json``: tree model over word-level features, tens of
microseconds a pair) scores every candidate. A candidate whose probability falls in the
*uncertain band* ``[low, high]`` (fitted on QQP dev, out of fold) is re-scored by the verifier
fitted with the MiniLM cross-encoder's probability (``verifier-cross.json``, one model pass
over the band's candidates); the others keep the plain verifier's probability — a clear miss
(below ``low``, or vetoed by a rule) or a clear hit (above ``high``) pays nothing extra. The
two models' outputs are both out-of-fold-calibrated P(same question), so one threshold,
chosen on dev for the mixed score, decides. The band and the threshold ship in
``verifier-cascade.json``, beside the two models it names.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError
from ._parse import Parsed
from ._verifier import CROSS_PATH, Verifier, read_json

CASCADE_PATH = Path(__file__).with_name("verifier-cascade.json")
CASCADE_FORMAT = "prsm-semantic-cascade/1"


@dataclass
class CascadeCounts:
    """How many scored lookups (and candidates) went to the cross-encoder."""

    lookups: int = 0
    crossed_lookups: int = 0
    candidates: int = 0
    crossed_candidates: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, candidates: int, crossed: int) -> None:
        with self.lock:
            self.lookups += 1
            self.crossed_lookups += crossed > 0
            self.candidates += candidates
            self.crossed_candidates += crossed

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {"lookups": self.lookups, "crossed_lookups": self.crossed_lookups,
                    "candidates": self.candidates,
                    "crossed_candidates": self.crossed_candidates}  # fmt: skip


@dataclass(frozen=True, slots=True, eq=False)
class CascadeVerifier:
    """P(same question): the plain verifier, and the cross-encoder's inside its unsure band."""

    base: Verifier
    cross: Verifier
    low: float
    high: float
    threshold: float
    candidate_threshold: float
    meta: dict[str, Any]
    counts: CascadeCounts = field(default_factory=CascadeCounts)

    def __post_init__(self) -> None:
        if self.base.cross_encoder is not None or self.cross.cross_encoder is None:
            raise ConfigError("cross_encoder", "a cascade needs a plain and a cross verifier")
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise ConfigError("cross_band", f"must be 0 <= low <= high <= 1, got "
                                            f"({self.low}, {self.high})")  # fmt: skip

    @classmethod
    def load(cls, path: str | Path | None = None,
             band: tuple[float, float] | None = None) -> CascadeVerifier:  # fmt: skip
        """The shipped cascade (or the one at ``path``); ``band`` overrides the fitted one."""
        p = Path(path) if path is not None else CASCADE_PATH
        data = read_json(p)
        if data.get("format") != CASCADE_FORMAT:
            raise ConfigError("verifier_path", f"{p}: not a {CASCADE_FORMAT} file")
        low, high = band if band is not None else (float(data["low"]), float(data["high"]))
        return cls(
            base=Verifier.load(p.parent / data["base"]),
            cross=Verifier.load(p.parent / data["cross"]),
            low=float(low),
            high=float(high),
            threshold=float(data["threshold"]),
            candidate_threshold=float(data["candidate_threshold"]),
            meta=dict(data.get("meta", {})),
        )

    @property
    def cross_encoder(self) -> Any:
        return self.cross.cross_encoder

    def warm(self) -> None:
        """Load the lexicon and the cross-encoder (once per process; in the cache's worker)."""
        self.base.warm()
        self.cross.warm()

    def parse(self, text: str) -> Parsed:
        return self.base.parse(text)

    def band_of(self, p0: np.ndarray) -> np.ndarray:
        """The candidates the cross-encoder re-scores: unsure, and not vetoed by a rule."""
        mask: np.ndarray = (p0 > 0.0) & (p0 >= self.low) & (p0 <= self.high)
        return mask

    def combine(self, p0: np.ndarray, p1: np.ndarray, band: np.ndarray) -> np.ndarray:
        """The cascade's probability given both models' (``p1`` read only inside ``band``)."""
        out: np.ndarray = np.where(band, p1, p0)
        return out

    def score(self, query: str, candidates: Sequence[str],
              cosines: Sequence[float]) -> np.ndarray:  # fmt: skip
        """P(same question) for each candidate, given best-first by cosine."""
        x = self.base.features(query, candidates, cosines)
        p0 = self.base.predict(x)
        band = self.band_of(p0)
        crossed = int(band.sum())
        self.counts.add(len(p0), crossed)
        if not crossed:
            return p0
        encoder = self.cross.cross_encoder
        assert encoder is not None
        texts = [c for c, b in zip(candidates, band.tolist(), strict=True) if b]
        ce = encoder.score(query, texts)
        p1 = np.zeros(len(p0))
        p1[band] = self.cross.predict(np.column_stack([x[band], ce]))
        return self.combine(p0, p1, band)


#: what the cache verifies with
AnyVerifier = Verifier | CascadeVerifier


def load_verifier(path: str | Path | None = None, *, mode: str = "cascade",
                  band: tuple[float, float] | None = None) -> AnyVerifier:  # fmt: skip
    """The verifier a cache uses: the file at ``path`` (a verifier or a cascade, by its
    format), else the shipped one for ``mode`` (``off``, ``cascade`` or ``always``), scored
    in the calling thread (:mod:`._verifier_helper` runs one in a helper process)."""
    if path is not None:
        p = Path(path)
        if read_json(p).get("format") == CASCADE_FORMAT:
            return CascadeVerifier.load(p, band)
        return Verifier.load(p)
    if mode == "off":
        return Verifier.load()
    if mode == "always":
        return Verifier.load(CROSS_PATH)
    return CascadeVerifier.load(band=band)
