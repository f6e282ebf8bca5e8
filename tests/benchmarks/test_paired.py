"""``benchmarks._paired``: the Hodges–Lehmann estimate and its exact intervals."""

from __future__ import annotations

import itertools
import math

import pytest
from benchmarks._paired import (
    hodges_lehmann,
    hodges_lehmann_interval,
    median_interval,
    signed_rank_counts,
    signed_rank_critical,
    walsh_averages,
)


def test_walsh_averages_and_the_estimate() -> None:
    assert walsh_averages([3.0, 1.0]) == [1.0, 2.0, 3.0]
    assert hodges_lehmann([0.01, 0.02, 0.03]) == pytest.approx(0.02)
    # one wild round moves the estimate little (the mean would move by 5)
    assert hodges_lehmann([1.0, 2.0, 3.0, 4.0, 40.0]) == pytest.approx(3.0)
    # Walsh averages 0, .5, 1, 2.5, 3, 5: not the median (1), the mean (2), nor the median
    # of the averages of distinct pairs only (2.5)
    assert hodges_lehmann([0.0, 1.0, 5.0]) == pytest.approx(1.75)
    with pytest.raises(ValueError, match="at least one"):
        hodges_lehmann([])


def test_the_signed_rank_distribution_and_its_critical_values() -> None:
    counts = signed_rank_counts(4)
    assert counts == [1, 1, 1, 2, 2, 2, 2, 2, 1, 1, 1]
    assert sum(signed_rank_counts(12)) == 2**12
    # Wilcoxon's table, two-sided 5 %: reject when T <= 3 (n 8), 13 (n 12), 29 (n 16)
    assert [signed_rank_critical(n, 0.95) for n in (5, 6, 8, 12, 16)] == [0, 1, 4, 14, 30]
    # a tail of exactly (1 - level) / 2 is allowed: n 4, P(T <= 1) = 2/16 = 0.125
    assert signed_rank_critical(4, 0.75) == 2


def test_the_critical_values_are_scipys_exact_signed_rank_test() -> None:
    """k is the largest with P(T <= k - 1) <= 2.5 %, P read from scipy's exact test on data
    whose positive ranks sum to k - 1 (and k + 1 - 1 past it)."""
    from scipy.stats import wilcoxon

    def p_at_most(n: int, t: int) -> float:
        positive, rest = set(), t  # ranks summing to t, largest first
        for rank in range(n, 0, -1):
            if rank <= rest:
                positive.add(rank)
                rest -= rank
        x = [float(r if r in positive else -r) for r in range(1, n + 1)]
        return float(wilcoxon(x, alternative="less", method="exact").pvalue)

    for n in range(6, 21):
        k = signed_rank_critical(n, 0.95)
        assert p_at_most(n, k - 1) <= 0.025 < p_at_most(n, k), n
        assert sum(signed_rank_counts(n)[:k]) / 2**n == pytest.approx(p_at_most(n, k - 1))


def test_the_interval_is_the_shifts_scipys_test_does_not_reject() -> None:
    """Inverting the exact two-sided signed-rank test: a shift between two neighbouring
    Walsh averages is inside the 95 % interval exactly when scipy's p-value exceeds 5 %."""
    from scipy.stats import wilcoxon

    drops = [0.121, 0.031, 0.075, 0.023, -0.353, 0.152, 0.083, -0.083, 0.012, 0.047, 0.29]
    lo, hi = hodges_lehmann_interval(drops)
    walsh = walsh_averages(drops)
    for a, b in itertools.pairwise(walsh):
        if b - a > 1e-9:
            d = (a + b) / 2
            p = wilcoxon([x - d for x in drops], method="exact").pvalue
            assert (lo < d < hi) == (p > 0.05), d


def test_intervals_cover_the_estimate_and_say_when_too_few() -> None:
    drops = [0.121, 0.031, 0.075, 0.023, -0.353, 0.152, 0.083, -0.083]
    lo, hi = hodges_lehmann_interval(drops)
    walsh = walsh_averages(drops)
    assert (lo, hi) == (walsh[3], walsh[-4])
    assert lo <= hodges_lehmann(drops) <= hi
    assert median_interval(drops) == (-0.353, 0.152)  # n 8: the sign test's is min to max
    assert median_interval(list(range(12))) == (2, 9)  # n 12: 3rd to 10th (96.1 %)
    assert hodges_lehmann_interval([1.0, 2.0, 3.0]) == (-math.inf, math.inf)
    assert median_interval([1.0, 2.0, 3.0]) == (-math.inf, math.inf)
    # a tail of exactly (1 - level) / 2 is allowed: n 3, P(B <= 0) = 1/8 = 0.125
    assert median_interval([1.0, 2.0, 3.0], 0.75) == (1.0, 3.0)
    with pytest.raises(ValueError, match="level"):
        median_interval(drops, 1.5)


def test_a_rounds_drop_is_of_its_two_measurements_of_each_mode() -> None:
    from benchmarks._monitoring_peak import ABBA, round_drops

    assert ABBA == (("on", "off", "off", "on"), ("off", "on", "on", "off"))
    on, off = [90.0, 110.0, 97.0, 97.0], [100.0, 100.0, 100.0, 100.0]
    assert round_drops(on, off) == pytest.approx([0.0, 0.03])  # the peaks': 1 - on / off
    # the CPU per request's: 1 - off / on (the cost's rise as a peak's drop)
    assert round_drops([80e-6, 80e-6], [80e-6, 84e-6]) == pytest.approx([1 - 160 / 164])
    with pytest.raises(ValueError, match="two measurements of each mode"):
        round_drops([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="not a positive number"):
        round_drops([1.0, float("nan")], [1.0, 2.0])


def test_the_cpu_per_request_counts_the_warm_ups_answers_as_its_cpu_does() -> None:
    from benchmarks._monitoring_peak import cpu_per_request

    # 2.3 s of CPU over the warm-up and the measured window: 23,000 answers in all
    out = {"completed": 20_000, "total_completed": 23_000}
    assert cpu_per_request(2.3, out) == pytest.approx(1e-4)
    assert math.isnan(cpu_per_request(0.5, {"completed": 0, "total_completed": 0}))
