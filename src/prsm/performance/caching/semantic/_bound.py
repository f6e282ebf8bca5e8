"""A wrong-hit rate bound users set, kept by thresholds learned online (vCache's idea).

A fixed threshold is a guess about every workload at once. With ``max_error_rate`` the cache
learns, per bound, which verifier scores it can serve while the wrong-hit rate of what it
serves stays under the bound:

* every outcome it learns — a lookup it *explored* (answered as a miss; when the upstream's
  answer is stored it is compared with the cached one by the judge), or the application's
  feedback on a served hit (``POST /v1/cache/feedback``) — is counted in the score bin of the
  lookup (50 bins over [0, 1]);
* the threshold is the lowest score ``t`` such that, over all outcomes at scores >= ``t``, the
  upper ``confidence`` bound of the wrong rate (Wilson's score interval) is <= the bound, with
  at least ``min_outcomes`` of them; with no such ``t`` nothing is served (cold start explores);
* a would-be hit at or over ``t`` is still explored with probability ``explore_rate``, so the
  evidence above the threshold keeps coming (its rate is what the bound is about);
* per entry: an entry once judged wrong at score ``s`` is not served again at scores <= ``s``
  (its own threshold rises above the learned one).

Evidence is pooled over the namespaces that share a bound setting (a tenant's or model's
prefix), so small namespaces — one per conversation — learn from their siblings. The
functions are pure; the cache keeps the state and feeds it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from statistics import NormalDist

BINS = 50
NEVER = 1.01  # a threshold no score reaches


@dataclass(slots=True)
class BoundState:
    """What one bound has learned: outcomes by score bin, and the threshold they allow."""

    bound: float
    right: list[int] = field(default_factory=lambda: [0] * BINS)
    wrong: list[int] = field(default_factory=lambda: [0] * BINS)
    threshold: float = NEVER
    entry_floor: dict[int, float] = field(default_factory=dict)  # key -> wrong at this score

    @property
    def outcomes(self) -> int:
        return sum(self.right) + sum(self.wrong)


def _bin(score: float) -> int:
    return min(BINS - 1, max(0, int(score * BINS)))


def upper_bound(wrong: int, right: int, confidence: float) -> float:
    """One-sided upper ``confidence`` bound on a wrong rate from counts (Wilson's interval)."""
    n = wrong + right
    if n == 0:
        return 1.0
    z = NormalDist().inv_cdf(confidence)
    p = wrong / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


def learn_threshold(
    right: list[int], wrong: list[int], bound: float, *, confidence: float, min_outcomes: int = 20
) -> float:
    """The lowest edge of a bin with outcomes such that the outcomes at and above it keep the
    wrong rate under ``bound`` with ``confidence``; :data:`NEVER` if none does."""
    best = NEVER
    r = w = 0
    for b in range(BINS - 1, -1, -1):
        if not right[b] + wrong[b]:
            continue  # no evidence at these scores: not served until some comes
        r += right[b]
        w += wrong[b]
        if r + w >= min_outcomes and upper_bound(w, r, confidence) <= bound:
            best = b / BINS
    return best


def observe(state: BoundState, key: int, score: float, right: bool, *, confidence: float) -> None:
    """Record one outcome (an explored lookup, or feedback on a served hit)."""
    if right:
        state.right[_bin(score)] += 1
    else:
        state.wrong[_bin(score)] += 1
        state.entry_floor[key] = max(score, state.entry_floor.get(key, -1.0))
    state.threshold = learn_threshold(state.right, state.wrong, state.bound, confidence=confidence)


def decide(state: BoundState, key: int, score: float, *, explore_rate: float,
           rng: random.Random) -> bool:  # fmt: skip
    """Serve (``True``) or explore (``False``) a candidate at ``score``."""
    if score < state.threshold or score <= state.entry_floor.get(key, -1.0):
        return False
    return not (explore_rate > 0 and rng.random() < explore_rate)


def forget(state: BoundState, keys: list[int]) -> None:
    """Drop per-entry state of entries that left the cache."""
    for k in keys:
        state.entry_floor.pop(k, None)
