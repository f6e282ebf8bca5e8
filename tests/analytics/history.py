"""A synthetic day of monitoring history with known faults, for the analytics tests."""

from __future__ import annotations

import numpy as np

from prsm.performance.monitoring import MetricsStore, Sample

STEP = 60.0
DAY = 86400.0


def usl(n: np.ndarray, lam: float = 10.0, sigma: float = 0.05, kappa: float = 0.002) -> np.ndarray:
    out: np.ndarray = lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))
    return out


def write_day(store: MetricsStore, now: float, *, seed: int = 0, load: float = 1.0) -> None:
    """24 h at 1-minute steps ending at ``now``: load rising 60 % over the day, node b's
    error rate climbing, the cache hit rate collapsing at 18 h, latency rising with load
    (``load`` scales the request rate)."""
    rng = np.random.default_rng(seed)
    t = np.arange(now - DAY, now, STEP)
    frac = (t - t[0]) / DAY
    rate = load * 60 * (1 + 0.6 * frac) + rng.normal(0, 2 * load, len(t))
    hit = np.where(frac < 0.75, 0.45, 0.12) + rng.normal(0, 0.01, len(t))
    err_b = 0.002 + 0.05 * frac + rng.normal(0, 0.002, len(t)).clip(-0.001)
    p95 = 0.30 + 0.25 * frac**2 + rng.normal(0, 0.01, len(t))
    samples: list[Sample] = []

    def put(metric: str, values: np.ndarray, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        samples.extend(
            Sample(metric, key, float(ts), float(v)) for ts, v in zip(t, values, strict=True)
        )

    put("application.request_rate", rate)
    put("application.response_time_p95", p95)
    put("application.cache_hit_rate", hit)
    put("application.error_rate", err_b / 2)
    put("business.cost_per_request", 0.002 + rng.normal(0, 0.00002, len(t)))
    put("model.response_time_p95", 0.3 + 0.4 * frac + rng.normal(0, 0.01, len(t)), model="m1")
    put("model.response_time_p95", 0.3 + rng.normal(0, 0.01, len(t)), model="m2")
    for node in ("a", "b"):
        conc = rng.integers(1, 40, len(t)).astype(float)
        put("node.in_flight", conc, node=node)
        put("node.request_rate", usl(conc) * (1 + rng.normal(0, 0.02, len(t))), node=node)
        put("node.latency_p50", 0.12 + rng.normal(0, 0.005, len(t)), node=node)
        put("node.error_rate", err_b if node == "b" else 0.002 + 0 * frac, node=node)
    for stage, mean in (("parse", 0.0002), ("route", 0.0001), ("cache", 0.002),
                        ("upstream", 0.25), ("respond", 0.0005)):  # fmt: skip
        put("stage.mean", mean + rng.normal(0, mean / 20, len(t)), stage=stage)
    store.write(samples)
