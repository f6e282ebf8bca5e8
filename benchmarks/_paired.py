"""A location estimate of paired differences robust to a shared machine's heavy-tailed noise:
the Hodges–Lehmann estimate (the median of the Walsh averages) and its exact
distribution-free confidence interval (Wilcoxon's signed-rank test), and the plain median's
interval (the sign test) beside it.

Used by the monitoring benchmark's peak part to judge the drop of its paired rounds: on the
shared VM one round's drop swings by ±10–40 % (a round of −35 % among ones of +2 to +15 %),
so the mean is unusable, and the median wastes most of the rounds (its standard error is
about a third above the Hodges–Lehmann estimate's on those rounds, by bootstrap).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def walsh_averages(values: Sequence[float]) -> list[float]:
    """``(x_i + x_j) / 2`` for every ``i <= j``, sorted."""
    xs = list(values)
    return sorted((xs[i] + xs[j]) / 2 for i in range(len(xs)) for j in range(i, len(xs)))


def hodges_lehmann(values: Sequence[float]) -> float:
    """The median of the Walsh averages of ``values`` (at least one)."""
    if not values:
        raise ValueError("hodges_lehmann needs at least one value")
    return statistics.median(walsh_averages(values))


def signed_rank_counts(n: int) -> list[int]:
    """How many of the ``2**n`` sign patterns give each signed-rank statistic ``T`` (the sum of
    the ranks with a + sign), ``T`` from 0 to ``n(n+1)/2``."""
    counts = [1] + [0] * (n * (n + 1) // 2)
    for rank in range(1, n + 1):
        for t in range(len(counts) - 1, rank - 1, -1):
            counts[t] += counts[t - rank]
    return counts


def signed_rank_critical(n: int, level: float) -> int:
    """The largest ``k`` with ``P(T < k) <= (1 - level) / 2`` under no shift: the
    ``level`` interval is the ``k``-th smallest to the ``k``-th largest Walsh average
    (0: the sample is too small for that level)."""
    counts = signed_rank_counts(n)
    alpha = (1.0 - level) / 2 * 2**n
    k, below = 0, 0
    while k < len(counts) and below + counts[k] <= alpha:
        below += counts[k]
        k += 1
    return k


def hodges_lehmann_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The exact ``level`` confidence interval of the shift the Hodges–Lehmann estimate
    estimates (symmetric noise about it assumed, nothing about its shape); ``(-inf, inf)``
    when there are too few values for that level (fewer than 6 at 95 %)."""
    check_level(level)
    walsh = walsh_averages(values)
    k = signed_rank_critical(len(values), level)
    if k == 0:
        return -math.inf, math.inf
    return walsh[k - 1], walsh[-k]


def median_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The exact distribution-free ``level`` confidence interval of the median (sign test:
    order statistics); ``(-inf, inf)`` when there are too few values (fewer than 6 at 95 %)."""
    check_level(level)
    xs = sorted(values)
    n = len(xs)
    alpha = (1.0 - level) / 2 * 2**n
    k, below = 0, 0
    while k <= n and below + math.comb(n, k) <= alpha:
        below += math.comb(n, k)
        k += 1
    if k == 0:
        return -math.inf, math.inf
    return xs[k - 1], xs[n - k]


def check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level!r}")
