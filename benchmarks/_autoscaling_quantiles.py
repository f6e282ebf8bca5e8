"""``--quantiles``: the burst table (``prsm.performance.scaling.fit_burst_quantiles``) against
scikit-learn's quantile regressors on the same features, measured before hand-writing it.

On the main trace's fitting period, requests per minute: fit on the days before
``PREDICTABILITY_SPLIT``, then, for every minute after it, forecast the ``quantile`` of the
requests of the next three minutes from those of the last five minutes and the last hour.
Scored by the pinball (quantile) loss and the coverage (share of windows at or below the
forecast) on the held-out days. The peers: ``QuantileRegressor`` (linear in log1p of the two
counts, HiGHS), ``HistGradientBoostingRegressor(loss="quantile")`` on the raw counts, and the
unconditional quantile.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from prsm.performance.scaling import BurstSettings, LoadSeries, fit_burst_quantiles

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


def _pinball(y: FloatArray, q: FloatArray, level: float) -> float:
    d = y - q
    return float(np.mean(np.maximum(level * d, (level - 1.0) * d)))


def quantile_check(
    times: FloatArray, split: float, end: float, levels: tuple[float, ...] = (0.8, 0.9, 0.95)
) -> list[dict[str, Any]]:
    """Rows ``{quantile, method, pinball, coverage, fit_s}`` (see the module docstring)."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import QuantileRegressor

    settings = BurstSettings(window=180.0, short=300.0, long=3600.0)
    steps = int(end // 60)
    y = np.bincount((times[times < end] // 60).astype(np.int64), minlength=steps)[:steps]
    y = y.astype(np.float64)
    cut = int(split // 60)
    kl, kw, ks = 60, 3, 5
    c = np.concatenate(([0.0], np.cumsum(y)))
    origins = np.arange(kl, len(y) - kw + 1)
    short, long_ = c[origins] - c[origins - ks], c[origins] - c[origins - kl]
    future = c[origins + kw] - c[origins]
    train, test = origins + kw <= cut, origins >= cut
    x = np.column_stack([short, long_])
    rows: list[dict[str, Any]] = []
    for q in levels:
        t = time.perf_counter()
        table = fit_burst_quantiles(LoadSeries(0.0, 60.0, y[:cut]), q, settings)
        fit_table = time.perf_counter() - t
        preds: dict[str, tuple[FloatArray, float]] = {
            "burst table (ours)": (
                np.array([table.upper(a, b) for a, b in x[test]]),
                fit_table,
            )
        }
        t = time.perf_counter()
        sub = np.flatnonzero(train)[::3]  # the LP grows fast: every third origin
        linear = QuantileRegressor(quantile=q, alpha=0.0, solver="highs")
        linear.fit(np.log1p(x[sub]), future[sub])
        preds["sklearn QuantileRegressor (linear, log1p)"] = (
            linear.predict(np.log1p(x[test])),
            time.perf_counter() - t,
        )
        t = time.perf_counter()
        boosted = HistGradientBoostingRegressor(
            loss="quantile", quantile=q, max_iter=200, random_state=0
        )
        boosted.fit(x[train], future[train])
        preds["sklearn HistGradientBoosting (quantile)"] = (
            boosted.predict(x[test]),
            time.perf_counter() - t,
        )
        preds["unconditional quantile"] = (
            np.full(int(test.sum()), np.quantile(future[train], q)),
            0.0,
        )
        for method, (pred, seconds) in preds.items():
            rows.append(
                {
                    "quantile": q,
                    "method": method,
                    "pinball": round(_pinball(future[test], pred, q), 4),
                    "coverage": round(float(np.mean(future[test] <= pred)), 3),
                    "fit_s": round(seconds, 3),
                    "held_out_minutes": int(test.sum()),
                }
            )
    return rows
