"""PNG plots of a comparison over time: load and forecast, replicas, queueing delay, SLO
violations (matplotlib, the ``sim`` extra)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DependencyMissingError
from ._result import SimulationResult

COLORS = {
    "hpa": "#1f77b4",
    "kpa": "#ff7f0e",
    "ray": "#2ca02c",
    "predictive": "#d62728",
    "oracle": "#7f7f7f",
}


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise DependencyMissingError("matplotlib", "sim", "drawing simulation plots") from exc
    return plt


def plot_comparison(
    results: Mapping[str, SimulationResult],
    path: str | Path,
    *,
    start: float | None = None,
    end: float | None = None,
    title: str = "",
    bucket: float = 300.0,
) -> Path:
    """Five panels over ``[start, end)`` (hours from ``start``), one line per policy, each
    value per ``bucket`` seconds: arrivals and the forecast (point, upper), replicas (mean),
    the worst queueing delay, and cumulative SLO-violation minutes."""
    plt = _pyplot()
    first = next(iter(results.values()))
    a = first.t0 if start is None else start
    per = {name: r.minutes(a, end) for name, r in results.items()}
    fig, axes = plt.subplots(5, 1, figsize=(14, 15), sharex=True)
    k = max(1, round(bucket / 60.0))

    def coarse(x: np.ndarray[Any, Any], how: str) -> np.ndarray[Any, Any]:
        n = len(x) // k
        if n == 0:
            return x
        y = x[: n * k].reshape(n, k)
        out: np.ndarray[Any, Any] = y.mean(axis=1) if how == "mean" else y.max(axis=1)
        return out

    base = per[next(iter(per))]
    hours = coarse((base["time"] - a) / 3600.0, "mean")
    ax = axes[0]
    ax.plot(hours, coarse(base["arrivals"] / 60.0, "mean"), color="black", lw=0.8, label="arrivals")
    for name, r in results.items():
        if len(r.forecasts):
            f = r.forecasts
            sel = (f[:, 0] >= a) & ((f[:, 0] < end) if end is not None else True)
            t = (f[sel, 0] - a) / 3600.0
            ax.plot(t, f[sel, 1], color=COLORS.get(name), lw=0.8, label=f"{name} forecast")
            ax.plot(t, f[sel, 2], color=COLORS.get(name), lw=0.6, ls="--", label=f"{name} p-upper")
    ax.set_ylabel("requests/s")
    ax.set_title(title or "load and forecast")
    ax.legend(loc="upper right", fontsize=8)
    for name, m in per.items():
        c = COLORS.get(name)
        axes[1].plot(hours, coarse(m["replicas"], "mean"), color=c, lw=0.8, label=name)
        axes[2].plot(hours, coarse(m["max_wait"], "max"), color=c, lw=0.8, label=name)
        axes[3].plot(
            hours,
            coarse((m["violations"] > 0).astype(float), "mean") * k,
            color=c,
            lw=0.8,
            label=name,
        )
        axes[4].plot(
            (m["time"] - a) / 3600.0, np.cumsum(m["violations"] > 0), color=c, lw=1.2, label=name
        )
    slo = first.slo
    axes[2].axhline(slo, color="black", lw=0.6, ls=":", label=f"SLO {slo:g} s")
    axes[1].set_ylabel("replicas (mean)")
    axes[2].set_ylabel("worst queueing delay (s)")
    axes[2].set_yscale("symlog", linthresh=max(1.0, slo))
    axes[3].set_ylabel(f"violation minutes / {k} min")
    axes[4].set_ylabel("violation minutes (cumulative)")
    axes[4].set_xlabel("hours")
    for ax in axes[1:]:
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
