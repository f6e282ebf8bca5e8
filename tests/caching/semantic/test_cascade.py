"""The verifier cascade: the cross-encoder scores only the candidates the plain verifier is
unsure of; clear hits and clear misses pay nothing extra."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from prsm.performance.caching.semantic import (
    CascadeVerifier,
    SemanticCache,
    SemanticSettings,
    Verifier,
)
from prsm.performance.caching.semantic._cascade import CASCADE_PATH, load_verifier
from prsm.performance.caching.semantic._verifier import CROSS_PATH
from prsm.performance.caching.semantic._verifier_helper import HelperVerifier
from prsm.performance.embeddings._embedder import HashingEmbedder
from prsm.performance.errors import ConfigError


class FixedCrossEncoder:
    """A test double: a fixed probability, and the candidates it was asked about."""

    def __init__(self, p: float) -> None:
        self.p = p
        self.asked: list[str] = []

    def load(self) -> None:
        pass

    def score(self, query: str, candidates: Sequence[str]) -> np.ndarray:
        self.asked.extend(candidates)
        return np.full(len(candidates), self.p)


def cascade(p: float, band: tuple[float, float] | None = None) -> CascadeVerifier:
    real = CascadeVerifier.load(band=band)
    cross = dataclasses.replace(real.cross, cross_encoder=FixedCrossEncoder(p))  # type: ignore[arg-type]
    return dataclasses.replace(real, cross=cross)


def test_the_shipped_cascade_names_its_models_and_a_band_inside_the_unit_interval() -> None:
    v = CascadeVerifier.load()
    data = json.loads(CASCADE_PATH.read_text())
    assert (data["base"], data["cross"]) == ("verifier.json", "verifier-cross.json")
    assert 0.0 <= v.low < v.threshold < v.high <= 1.0
    assert v.base.cross_encoder is None and v.cross.cross_encoder is not None
    assert v.meta["fitted_on"].startswith("qqp_pairs_dev")


def test_only_unsure_candidates_reach_the_cross_encoder() -> None:
    v = cascade(0.99)
    encoder = v.cross.cross_encoder
    assert isinstance(encoder, FixedCrossEncoder)
    q = "How do I scroll up in Excel?"
    cands = ["How can I scroll up in Excel?", "How do I scroll down in Excel?"]
    p0 = v.base.score(q, cands, [0.95, 0.93])
    probs = v.score(q, cands, [0.95, 0.93])
    unsure = [c for c, p in zip(cands, p0, strict=True) if p > 0 and v.low <= p <= v.high]
    assert encoder.asked == unsure
    assert probs[1] == 0.0  # "down" is an antonym: vetoed, never scored
    for i, c in enumerate(cands):  # outside the band the plain verifier's probability stands
        if c not in unsure:
            assert probs[i] == p0[i]
    assert v.counts.as_dict()["lookups"] == 1


def test_a_band_can_send_everything_or_nothing_to_the_cross_encoder() -> None:
    q, cands, cos = "How do I reset my router?", ["How can I reset my router?"], [0.97]
    everything = cascade(0.01, band=(0.0, 1.0))
    low = everything.score(q, cands, cos)
    assert everything.counts.crossed_candidates == 1
    high = cascade(0.99, band=(0.0, 1.0)).score(q, cands, cos)
    assert low[0] < high[0]  # the cross-encoder's probability moves the score
    nothing = cascade(0.01, band=(1.0, 1.0))
    assert nothing.score(q, cands, cos)[0] == nothing.base.score(q, cands, cos)[0]
    assert nothing.counts.crossed_candidates == 0


async def test_settings_pick_the_verifier_and_the_default_is_the_cascade() -> None:
    emb = HashingEmbedder(16)
    made = {
        mode: SemanticCache(SemanticSettings(cross_encoder=mode), embedder=emb)
        for mode in ("off", "cascade", "always", True, False)
    }
    default = SemanticCache(SemanticSettings(), embedder=emb).verifier
    # the default runs it in a helper process, and keeps the same verifier here for its
    # thresholds
    assert isinstance(default, HelperVerifier) and default.spec == (None, "cascade", None)
    assert isinstance(default.local, CascadeVerifier)
    assert isinstance(_local(made["cascade"].verifier), CascadeVerifier)
    for mode in ("off", False):
        v = _local(made[mode].verifier)
        assert isinstance(v, Verifier) and v.cross_encoder is None
    for mode in ("always", True):
        v = _local(made[mode].verifier)
        assert isinstance(v, Verifier) and v.cross_encoder is not None
    assert SemanticSettings(cross_encoder=True).cross_encoder == "always"
    band = _local(SemanticCache(SemanticSettings(cross_band=(0.2, 0.4)), embedder=emb).verifier)
    assert isinstance(band, CascadeVerifier) and (band.low, band.high) == (0.2, 0.4)
    thread = SemanticSettings(model_runner="thread")
    assert isinstance(SemanticCache(thread, embedder=emb).verifier, CascadeVerifier)
    assert isinstance(load_verifier(CROSS_PATH), Verifier)
    assert isinstance(load_verifier(CASCADE_PATH), CascadeVerifier)


def _local(v: object) -> object:
    return v.local if isinstance(v, HelperVerifier) else v


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"cross_encoder": "sometimes"}, "cross_encoder"),
        ({"cross_band": (0.6, 0.2)}, "cross_band"),
        ({"cross_band": (0.1, 1.5)}, "cross_band"),
        ({"cross_band": (0.1,)}, "cross_band"),
    ],
)
def test_bad_cascade_settings_name_the_field(kw: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        SemanticSettings(**kw)  # type: ignore[arg-type]


def test_a_cascade_file_of_another_format_is_refused(tmp_path: Path) -> None:
    data = json.loads(CASCADE_PATH.read_text())
    data["format"] = "something/else"
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="not a prsm-semantic-cascade"):
        CascadeVerifier.load(bad)
