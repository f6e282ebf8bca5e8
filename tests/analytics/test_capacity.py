import math

import numpy as np
import pytest

from prsm.performance.analytics import (
    CapacityModel,
    CpuCost,
    UslFit,
    erlang_c,
    fit_cpu_cost,
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


def test_cpu_cost_regression_separates_background_from_per_request_cost() -> None:
    rate = np.linspace(200, 9000, 60)
    noise = np.random.default_rng(1).normal(0, 0.005, len(rate))
    cores = 0.03 + 70e-6 * rate + noise
    cost = fit_cpu_cost(rate, cores)
    assert cost.method == "regression"
    assert cost.seconds_per_request == pytest.approx(70e-6, rel=0.03)
    assert cost.background_cores == pytest.approx(0.03, abs=0.01)
    assert cost.ceiling(1.0) == pytest.approx(0.97 / 70e-6, rel=0.05)
    assert cost.ceiling(0.01) == 0.0  # the background alone uses more than that


def test_cpu_cost_without_a_spread_of_rates_is_the_conservative_ratio() -> None:
    rate = np.array([1000.0, 1010, 990, 1005, 0])  # the idle interval is left out
    cores = 0.05 + 70e-6 * rate
    cost = fit_cpu_cost(rate, cores)
    assert cost.method == "ratio" and cost.background_cores == 0.0
    assert cost.seconds_per_request == pytest.approx(120e-6, rel=0.01)  # background counted in
    assert cost.samples == 4


def test_cpu_cost_needs_intervals_that_served_requests() -> None:
    with pytest.raises(ConfigError, match="request_rate"):
        fit_cpu_cost([0, 0, 5], [0.1, 0.1, 0.2])
    with pytest.raises(ConfigError, match="cores_used"):
        fit_cpu_cost([1, 2, 3], [0, 0, 0])
    with pytest.raises(ConfigError, match="cores_used"):
        fit_cpu_cost([1, 2, 3], [0.1, 0.2])


def test_bounded_model_names_the_cpu_when_the_core_runs_out_first() -> None:
    # a latency-bound process: linear to far beyond what one core serves (as measured)
    usl = UslFit(lam=156.6, sigma=0.0012, kappa=0.0, r2=1.0, samples=9)
    cpu = CpuCost(70e-6, 0.0, 9, "regression")
    model = CapacityModel(usl, cpu, cores=1.0)
    assert model.binding == "cpu"
    assert model.ceiling == pytest.approx(1 / 70e-6)
    assert model.throughput(8) == pytest.approx(usl.throughput(8))  # below the ceiling: the USL
    assert model.throughput(256) == pytest.approx(1 / 70e-6)  # past it: the CPU
    knee = model.knee
    assert knee is not None and usl.throughput(knee) == pytest.approx(0.9 / 70e-6, rel=1e-6)
    sat = model.saturation_concurrency
    assert sat is not None and knee < sat < 128
    assert usl.throughput(sat) == pytest.approx(1 / 70e-6, rel=1e-6)
    d = model.as_dict()
    assert d["binding"] == "cpu" and d["knee_concurrency"] == knee


def test_bounded_model_names_the_usl_when_it_peaks_under_the_cpu() -> None:
    usl = UslFit(lam=10.0, sigma=0.05, kappa=0.002, r2=1.0, samples=9)
    model = CapacityModel(usl, CpuCost(1e-4, 0.0, 9, "ratio"), cores=1.0)
    assert model.binding == "coherency"
    assert model.ceiling == pytest.approx(usl.peak_throughput)
    assert model.saturation_concurrency is None
    knee = model.knee
    assert knee is not None and knee < usl.peak_concurrency
    flat = CapacityModel(UslFit(10.0, 0.05, 0.0, 1.0, 9))
    assert flat.binding == "contention" and flat.ceiling == pytest.approx(200.0)
    nothing = CapacityModel(UslFit(10.0, 0.0, 0.0, 1.0, 9))
    assert nothing.binding is None and nothing.knee is None
    only_cpu = CapacityModel(None, CpuCost(1e-3, 0.0, 3, "ratio"), cores=2.0)
    assert only_cpu.binding == "cpu" and only_cpu.ceiling == pytest.approx(2000.0)
    assert only_cpu.knee is None
    with pytest.raises(ConfigError, match="usl"):
        only_cpu.throughput(4)
    with pytest.raises(ConfigError, match="cores"):
        CapacityModel(usl, cores=0)
