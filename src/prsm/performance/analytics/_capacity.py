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

**CPU ceiling**: a process cannot serve more than ``cores / (CPU seconds a request)``. The CPU
cost is fitted from the history as ``cores used = background + seconds_per_request · rate``
(:func:`fit_cpu_cost`, the process's CPU counters against its request rate); the USL alone,
fitted where the process is latency-bound, predicts linear growth past the point where its
core runs out. :class:`CapacityModel` is the USL bounded by that ceiling: it names which bound
binds (``cpu``, or the USL's ``contention`` / ``coherency``) and the knee.
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


@dataclass(frozen=True, slots=True)
class CpuCost:
    """CPU a request costs, fitted from (request rate, cores used) samples of one process."""

    seconds_per_request: float
    background_cores: float
    samples: int
    method: str
    """``regression`` (slope and intercept over a spread of rates) or ``ratio`` (CPU over
    requests through the origin: the background counted in, a conservative cost)."""

    def ceiling(self, cores: float) -> float:
        """The request rate at which ``cores`` are all used."""
        return max(cores - self.background_cores, 0.0) / self.seconds_per_request

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "cpu_seconds_per_request": self.seconds_per_request,
            "background_cores": self.background_cores,
            "samples": self.samples,
            "method": self.method,
        }


#: the spread of request rates (max / min) the regression needs; under it, the ratio is used
RATE_SPREAD = 1.5


def fit_cpu_cost(request_rate: npt.ArrayLike, cores_used: npt.ArrayLike) -> CpuCost:
    """CPU seconds a request from samples of a process's request rate (req/s) and the cores
    it used over the same intervals (CPU seconds per second). Both are interval means, so the
    linear relation holds between them whatever the interval."""
    r = np.asarray(request_rate, dtype=np.float64)
    c = np.asarray(cores_used, dtype=np.float64)
    if r.shape != c.shape:
        raise ConfigError("cores_used", "need one CPU sample a request-rate sample")
    keep = np.isfinite(r) & np.isfinite(c) & (r > 0) & (c >= 0)
    r, c = r[keep], c[keep]
    if len(r) < 3:
        raise ConfigError("request_rate", "need 3 or more intervals that served requests")
    if float(np.sum(c)) <= 0:
        raise ConfigError("cores_used", "the process used no CPU while serving requests")
    if float(r.max()) >= RATE_SPREAD * float(r.min()) and len(np.unique(r)) >= 3:
        slope, intercept = (float(v) for v in np.polyfit(r, c, 1))
        if slope > 0 and intercept >= 0:
            return CpuCost(slope, intercept, len(r), "regression")
    return CpuCost(float(np.sum(c) / np.sum(r)), 0.0, len(r), "ratio")


#: the knee: the concurrency at which throughput reaches this share of its ceiling
KNEE_SHARE = 0.9


@dataclass(frozen=True, slots=True)
class CapacityModel:
    """The USL bounded by a CPU ceiling: ``X(N) = min(USL(N), cores / cpu_seconds_per_request)``
    (either part may be missing)."""

    usl: UslFit | None
    cpu: CpuCost | None = None
    cores: float = 1.0

    def __post_init__(self) -> None:
        if not self.cores > 0:
            raise ConfigError("cores", f"must be > 0, got {self.cores!r}")

    @property
    def cpu_ceiling(self) -> float:
        return self.cpu.ceiling(self.cores) if self.cpu is not None else math.inf

    @property
    def usl_ceiling(self) -> float:
        return self.usl.peak_throughput if self.usl is not None else math.inf

    @property
    def ceiling(self) -> float:
        """The most throughput the model allows (inf: nothing bounds it)."""
        return min(self.usl_ceiling, self.cpu_ceiling)

    @property
    def binding(self) -> str | None:
        """Which bound sets the ceiling: ``cpu``, ``coherency`` (the USL peaks and falls),
        ``contention`` (the USL flattens at λ/σ), or None when nothing bounds it."""
        if math.isinf(self.ceiling):
            return None
        if self.cpu_ceiling < self.usl_ceiling:
            return "cpu"
        kappa = self.usl.kappa if self.usl is not None else 0.0
        return "coherency" if kappa > 0 else "contention"

    def throughput(self, n: float) -> float:
        if self.usl is None:
            raise ConfigError("usl", "throughput at a concurrency needs a fitted USL")
        return min(self.usl.throughput(n), self.cpu_ceiling)

    def concurrency_for(self, rate: float, limit: float = 1e9) -> float | None:
        """The smallest concurrency at which the USL reaches ``rate`` (bisection on its rising
        part), or None when it never does below ``limit``."""
        if self.usl is None:
            return None
        top = min(self.usl.peak_concurrency, limit)
        if self.usl.throughput(top) < rate:
            return None
        lo, hi = 1.0, top
        if self.usl.throughput(lo) >= rate:
            return lo
        for _ in range(200):
            mid = (lo + hi) / 2
            if self.usl.throughput(mid) >= rate:
                hi = mid
            else:
                lo = mid
        return hi

    @property
    def knee(self) -> float | None:
        """The concurrency at which throughput reaches ``KNEE_SHARE`` of the ceiling: past it,
        throughput flattens and latency (N / X, Little's law) turns up."""
        ceiling = self.ceiling
        return None if math.isinf(ceiling) else self.concurrency_for(KNEE_SHARE * ceiling)

    @property
    def saturation_concurrency(self) -> float | None:
        """With the CPU binding: the concurrency at which the USL meets the CPU ceiling."""
        return self.concurrency_for(self.cpu_ceiling) if self.binding == "cpu" else None

    def as_dict(self) -> dict[str, object]:
        def finite(v: float | None) -> float | None:
            return v if v is not None and math.isfinite(v) else None

        return {
            "usl": self.usl.as_dict() if self.usl is not None else None,
            "cpu": self.cpu.as_dict() if self.cpu is not None else None,
            "cores": self.cores,
            "usl_ceiling": finite(self.usl_ceiling),
            "cpu_ceiling": finite(self.cpu_ceiling),
            "ceiling": finite(self.ceiling),
            "binding": self.binding,
            "knee_concurrency": self.knee,
            "saturation_concurrency": self.saturation_concurrency,
        }


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
