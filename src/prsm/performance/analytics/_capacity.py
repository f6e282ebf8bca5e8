"""Capacity models fitted from history: the Universal Scalability Law and Erlang C.

**USL** (Gunther): throughput at concurrency N is ``X(N) = λN / (1 + σ(N − 1) + κN(N − 1))``:
λ the throughput of one request alone, σ contention (the serial share), κ coherency (the
cross-talk that makes throughput fall past a peak at ``N* = sqrt((1 − σ) / κ)``). Fitted by
bounded non-linear least squares (``scipy.optimize.curve_fit``) on (concurrency, throughput)
samples, e.g. a node's ``in_flight`` and ``request_rate`` from the history.

**Erlang C** (M/M/c): with arrival rate λ, per-replica service rate μ and c replicas (offered
load a = λ/μ < c), a request waits with probability ``C(c, a)`` and
``P(wait > t) = C(c, a) · exp(−(cμ − λ) t)``. :func:`replicas_for_slo` is the fewest replicas
whose latency quantile (service time plus wait) meets an objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import optimize

from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class UslFit:
    """A fitted Universal Scalability Law."""

    lam: float
    sigma: float
    kappa: float
    r2: float
    samples: int

    @property
    def peak_concurrency(self) -> float:
        """The concurrency of peak throughput (infinite without coherency cost)."""
        if self.kappa <= 0:
            return math.inf
        return math.sqrt(max(1.0 - self.sigma, 0.0) / self.kappa)

    @property
    def peak_throughput(self) -> float:
        n = self.peak_concurrency
        if math.isinf(n):
            return self.lam / self.sigma if self.sigma > 0 else math.inf
        return self.throughput(n)

    def throughput(self, n: float) -> float:
        return self.lam * n / (1 + self.sigma * (n - 1) + self.kappa * n * (n - 1))

    def as_dict(self) -> dict[str, float | int]:
        return {
            "lambda": self.lam,
            "sigma": self.sigma,
            "kappa": self.kappa,
            "r2": self.r2,
            "samples": self.samples,
            "peak_concurrency": self.peak_concurrency,
            "peak_throughput": self.peak_throughput,
        }


def _usl(
    n: npt.NDArray[np.float64], lam: float, sigma: float, kappa: float
) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))
    return out


def fit_usl(concurrency: npt.ArrayLike, throughput: npt.ArrayLike) -> UslFit:
    """Fit the USL to (concurrency, throughput) samples (concurrency >= 1 kept)."""
    n = np.asarray(concurrency, dtype=np.float64)
    x = np.asarray(throughput, dtype=np.float64)
    if n.shape != x.shape:
        raise ConfigError("throughput", "need one throughput a concurrency sample")
    keep = np.isfinite(n) & np.isfinite(x) & (n >= 1) & (x >= 0)
    n, x = n[keep], x[keep]
    if len(n) < 3 or len(np.unique(n)) < 3:
        raise ConfigError("concurrency", "need samples at 3 or more distinct concurrencies")
    low = n <= np.min(n) + 1e-9
    lam0 = float(np.mean(x[low] / n[low]))
    try:
        popt, _ = optimize.curve_fit(
            _usl,
            n,
            x,
            p0=(max(lam0, 1e-9), 0.01, 0.0001),
            bounds=([0.0, 0.0, 0.0], [np.inf, 1.0, np.inf]),
            maxfev=20000,
        )
    except RuntimeError as exc:
        raise ConfigError("throughput", f"the USL fit did not converge: {exc}") from exc
    lam, sigma, kappa = (float(v) for v in popt)
    pred = _usl(n, lam, sigma, kappa)
    ss_res = float(np.sum((x - pred) ** 2))
    ss_tot = float(np.sum((x - x.mean()) ** 2))
    r2 = 1 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return UslFit(lam, sigma, kappa, r2, len(n))


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits in an M/M/c queue (1.0 when ``a >= c``)."""
    if servers < 1:
        raise ConfigError("servers", f"must be >= 1, got {servers!r}")
    if offered_load < 0:
        raise ConfigError("offered_load", f"must be >= 0, got {offered_load!r}")
    if offered_load >= servers:
        return 1.0
    # Erlang B by the stable recursion, then C from B.
    b = 1.0
    for k in range(1, servers + 1):
        b = offered_load * b / (k + offered_load * b)
    rho = offered_load / servers
    return b / (1 - rho + rho * b)


def wait_quantile(servers: int, arrival_rate: float, service_time: float, q: float) -> float:
    """The ``q``-quantile of the queueing wait (seconds; inf when overloaded)."""
    if not 0 < q < 1:
        raise ConfigError("q", f"must be in (0, 1), got {q!r}")
    if service_time <= 0:
        raise ConfigError("service_time", f"must be > 0, got {service_time!r}")
    mu = 1.0 / service_time
    a = arrival_rate / mu
    if a >= servers:
        return math.inf
    c = erlang_c(servers, a)
    if c <= 1 - q:
        return 0.0
    return math.log(c / (1 - q)) / (servers * mu - arrival_rate)


def replicas_for_slo(
    arrival_rate: float,
    service_time: float,
    latency_objective: float,
    q: float = 0.95,
    *,
    max_replicas: int = 10_000,
) -> int:
    """The fewest replicas whose ``q``-quantile latency (service + wait) meets the objective.

    The service time itself counts whole (a conservative bound: the quantile of a sum is at
    most the sum of the quantiles when the service time is the measured typical one).
    """
    if latency_objective <= service_time:
        raise ConfigError(
            "latency_objective",
            f"{latency_objective:g}s cannot be met by a {service_time:g}s service time",
        )
    budget = latency_objective - service_time
    c = max(1, math.floor(arrival_rate * service_time) + 1)
    while c <= max_replicas:
        if wait_quantile(c, arrival_rate, service_time, q) <= budget:
            return c
        c += 1
    raise ConfigError("arrival_rate", f"needs more than {max_replicas} replicas")
