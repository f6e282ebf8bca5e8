"""The verifier run whole in a helper process (``model_runner="process"``, the default).

A verifier's features are Python: parsing both texts, looking their words up in the lexicon,
aligning what differs (about 7 ms of CPU for a 50-word query against five candidates on a
2-core machine). Run in a worker thread of the gateway's process, that CPU holds the GIL, and
the event loop thread waits for it — up to the interpreter's switch interval (5 ms) at a time,
in wall time, which a measure of the loop thread's own CPU never shows. So the whole score
(features, the tree model, and the cross-encoder when the verifier has one) runs in a helper
process (:mod:`prsm.performance._helper_process`; under ``serve --workers N`` the serving
parent's, shared by every gateway process): the cache's lookup pickles the query and the
candidates' texts and awaits the helper's answer on the event loop (:meth:`HelperVerifier.ascore`;
no worker thread takes the GIL from the loop); :meth:`HelperVerifier.score` is the same call
blocking the calling thread, for batch work.

The helper loads the same verifier from the same files (:func:`load_verifier` with its models
in that process) once per start; this process keeps its own copy for what the cache reads
without scoring (the thresholds, ``meta``) and never loads its lexicon or models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..._helper_host import Helper, shared_helper
from ..._helper_process import LOAD_TIMEOUT, Prepare
from ._cascade import CascadeCounts, CascadeVerifier, load_verifier
from ._verifier import Verifier

#: what identifies a verifier to its helper: (path or None, mode, band or None)
Spec = tuple[str | None, str, tuple[float, float] | None]
#: the helper's loaded verifiers, by spec (in the helper process)
_LOADED: dict[Spec, Verifier | CascadeVerifier] = {}


class HelperVerifier:
    """A plain or cascade verifier whose :meth:`score` runs in a helper process."""

    __slots__ = ("counts", "local", "spec", "timeout")

    def __init__(self, local: Verifier | CascadeVerifier, spec: Spec, timeout: float) -> None:
        #: the same verifier loaded here, for its thresholds and ``meta`` (never scored here)
        self.local = local
        self.spec = spec
        self.timeout = timeout
        #: lookups and candidates scored, and those a cascade's cross-encoder re-scored
        self.counts = CascadeCounts()

    @property
    def threshold(self) -> float:
        return self.local.threshold

    @property
    def candidate_threshold(self) -> float:
        return self.local.candidate_threshold

    @property
    def meta(self) -> dict[str, Any]:
        return self.local.meta

    def _helper(self) -> Helper:
        return shared_helper(f"semantic verifier {self.spec!r}")

    def warm(self) -> None:
        """Start the helper and load the verifier there (lexicon, models)."""
        self._helper().prepare(_load_in_helper, (self.spec,), LOAD_TIMEOUT)

    def score(self, query: str, candidates: Sequence[str],
              cosines: Sequence[float]) -> np.ndarray:  # fmt: skip
        """P(same question) for each candidate, given best-first by cosine, computed by the
        helper (started, or started again, as needed)."""
        args, load = self._request(query, candidates, cosines)
        return self._counted(self._helper().call(_score_in_helper, args, self.timeout,
                                                 prepare=load))  # fmt: skip

    def _request(self, query: str, candidates: Sequence[str],
                 cosines: Sequence[float]) -> tuple[tuple[Any, ...], Prepare]:  # fmt: skip
        """A score's arguments in the helper, and what the helper must have loaded first."""
        args = (self.spec, query, list(candidates), [float(c) for c in cosines])
        return args, (_load_in_helper, (self.spec,))

    def _counted(self, answer: tuple[np.ndarray, int]) -> np.ndarray:
        probs, crossed = answer
        self.counts.add(len(probs), crossed)
        return probs

    async def awarm(self) -> None:
        """:meth:`warm` from the event loop (lookups meanwhile wait their turn on it)."""
        load = (_load_in_helper, (self.spec,))
        await self._helper().acall(*load, LOAD_TIMEOUT, prepare=load)

    async def ascore(self, query: str, candidates: Sequence[str],
                     cosines: Sequence[float]) -> np.ndarray:  # fmt: skip
        """:meth:`score` from the event loop, without a worker thread: the pickling and the
        pipe's framing run on the loop, which sees them, instead of in a thread that takes
        the GIL from it. A cancelled caller leaves the call to finish (shielded), so the
        helper's answer is read by the call that asked for it."""
        args, load = self._request(query, candidates, cosines)
        return self._counted(await self._helper().acall(_score_in_helper, args, self.timeout,
                                                        prepare=load))  # fmt: skip


def helper_verifier(path: str | None, mode: str, band: tuple[float, float] | None,
                    timeout: float) -> HelperVerifier:  # fmt: skip
    """The verifier :func:`load_verifier` would load, scored in a helper process (the files
    are read here too, so a bad path or file fails here, naming it)."""
    local = load_verifier(path, mode=mode, band=band)
    return HelperVerifier(local, (path, mode, band), timeout)


def _verifier(spec: Spec) -> Verifier | CascadeVerifier:  # pragma: no cover - helper
    v = _LOADED.get(spec)
    if v is None:
        path, mode, band = spec
        v = load_verifier(path, mode=mode, band=band)
        v.warm()
        _LOADED[spec] = v
    return v


def _load_in_helper(spec: Spec) -> bool:  # pragma: no cover - helper
    _verifier(spec)
    return True


def _score_in_helper(  # pragma: no cover - helper
    spec: Spec, query: str, candidates: list[str], cosines: list[float]
) -> tuple[np.ndarray, int]:
    """The probabilities, and how many candidates a cascade's cross-encoder re-scored (0 for
    a plain verifier: with ``cross_encoder: always`` it scores every candidate no rule
    vetoes)."""
    v = _verifier(spec)
    if isinstance(v, CascadeVerifier):
        before = v.counts.crossed_candidates
        probs = v.score(query, candidates, cosines)
        return probs, v.counts.crossed_candidates - before
    return v.score(query, candidates, cosines), 0
