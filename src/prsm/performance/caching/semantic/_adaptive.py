"""Per-entry adaptive thresholds that keep the wrong-hit rate under a bound (vCache's idea).

A fixed threshold is a guess about every entry at once. Here each entry learns from feedback:
when the cache is unsure it *explores* (answers as a miss, the upstream answers, and the
fresh answer is compared with the cached one), and it *exploits* (serves the hit) only when
the estimated probability that this entry is wrong at this score is below the bound with the
asked-for confidence.

The estimate for an entry at score ``s`` is a Beta posterior of its error rate:

* the prior comes from the pooled observations of all entries at scores near ``s``
  (within two bins of 0.02; their error rate, weighing at most ``prior_weight`` outcomes);
* the entry's own evidence counts errors it made at a score >= ``s`` (it would be wrong
  here too) and correct answers at a score <= ``s`` (it would be right here too).

It exploits when the posterior's ``confidence`` quantile is <= ``max_wrong_rate``. An entry
that served a wrong answer becomes stricter; one that was right at lower scores, laxer.
These are pure functions of the state; the cache keeps the state and feeds the outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BINS = 50


@dataclass(slots=True)
class PooledEvidence:
    """Outcomes of every explored lookup, binned by score in [0, 1]."""

    right: list[int] = field(default_factory=lambda: [0] * BINS)
    wrong: list[int] = field(default_factory=lambda: [0] * BINS)

    def near(self, score: float, width: int = 2) -> tuple[int, int]:
        """Right and wrong outcomes within ``width`` bins of ``score``."""
        b = _bin(score)
        lo, hi = max(0, b - width), min(BINS, b + width + 1)
        return sum(self.right[lo:hi]), sum(self.wrong[lo:hi])


@dataclass(slots=True)
class EntryEvidence:
    """One entry's explored outcomes: (score, right?) pairs, the latest ``limit`` kept."""

    outcomes: list[tuple[float, bool]] = field(default_factory=list)


def _bin(score: float) -> int:
    return min(BINS - 1, max(0, int(score * BINS)))


def wrong_rate_bound(
    pooled: PooledEvidence,
    entry: EntryEvidence | None,
    score: float,
    *,
    confidence: float,
    prior_weight: float = 50.0,
) -> float:
    """Upper ``confidence`` bound on the entry's chance of being wrong at ``score``."""
    right, wrong = pooled.near(score)
    n = right + wrong
    rate = wrong / n if n else 0.5
    weight = min(float(n), prior_weight)
    a = 0.5 + rate * weight
    b = 0.5 + (1.0 - rate) * weight
    if entry is not None:
        a += sum(1 for s, ok in entry.outcomes if not ok and s >= score)
        b += sum(1 for s, ok in entry.outcomes if ok and s <= score)
    from scipy.stats import beta

    return float(beta.ppf(confidence, a, b))


def should_serve(
    pooled: PooledEvidence,
    entry: EntryEvidence | None,
    score: float,
    *,
    max_wrong_rate: float,
    confidence: float,
) -> bool:
    """Exploit (serve the hit) or explore (treat as a miss and learn from the answer)."""
    return wrong_rate_bound(pooled, entry, score, confidence=confidence) <= max_wrong_rate


def observe(
    pooled: PooledEvidence,
    entry: EntryEvidence,
    score: float,
    right: bool,
    *,
    limit: int = 64,
) -> None:
    """Record one explored outcome in the entry's and the pooled evidence."""
    entry.outcomes.append((score, right))
    if len(entry.outcomes) > limit:
        del entry.outcomes[0]
    if right:
        pooled.right[_bin(score)] += 1
    else:
        pooled.wrong[_bin(score)] += 1
