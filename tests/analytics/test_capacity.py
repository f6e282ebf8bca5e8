import math

import numpy as np
import pytest

from prsm.performance.analytics import (
    erlang_c,
    fit_usl,
    replicas_for_slo,
    wait_quantile,
)
from prsm.performance.errors import ConfigError


def test_usl_fit_recovers_known_parameters_and_peak() -> None:
    n = np.arange(1, 65, dtype=float)
    lam, sigma, kappa = 10.0, 0.05, 0.002
    x = lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))
    noisy = x * (1 + np.random.default_rng(0).normal(0, 0.01, len(n)))
    fit = fit_usl(n, noisy)
    assert fit.lam == pytest.approx(lam, rel=0.05)
    assert fit.sigma == pytest.approx(sigma, abs=0.01)
    assert fit.kappa == pytest.approx(kappa, rel=0.2)
    assert fit.peak_concurrency == pytest.approx(math.sqrt((1 - sigma) / kappa), rel=0.1)
    assert fit.r2 > 0.99
    assert fit.peak_throughput == pytest.approx(x.max(), rel=0.03)


def test_usl_needs_distinct_concurrencies() -> None:
    with pytest.raises(ConfigError, match="concurrency"):
        fit_usl([2, 2, 2, 2], [1, 1, 1, 1])


def test_erlang_c_known_values() -> None:
    # c = 1 is M/M/1: P(wait) = rho
    assert erlang_c(1, 0.7) == pytest.approx(0.7)
    # a textbook value: c = 2, a = 1 -> C = 1/3
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(3, 3.0) == 1.0
    # M/M/1 wait quantile: P(W > t) = rho exp(-(mu - lam) t)
    t95 = wait_quantile(1, 0.5, 1.0, 0.95)
    assert 0.5 * math.exp(-0.5 * t95) == pytest.approx(0.05)


def test_replicas_for_slo_is_the_fewest_that_meet_it() -> None:
    rate, service, objective = 40.0, 0.2, 0.5
    c = replicas_for_slo(rate, service, objective, 0.95)
    assert wait_quantile(c, rate, service, 0.95) <= objective - service
    assert wait_quantile(c - 1, rate, service, 0.95) > objective - service
    assert c > rate * service  # at least the offered load
    with pytest.raises(ConfigError, match="latency_objective"):
        replicas_for_slo(rate, service, 0.1)
