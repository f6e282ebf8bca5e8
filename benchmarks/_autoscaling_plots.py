"""The autoscaling benchmark's trade-off plots: violation minutes against replica-hours, on
the fitting period (the tuning grid and the peers) and on the report period (``--frontier``:
ours at every grid point, the HPA at every scale-down stabilisation window)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

PEER_COLORS = {"hpa": "#1f77b4", "kpa": "#ff7f0e", "ray": "#2ca02c", "oracle": "black"}
OURS_COLORS = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b")


def _series(
    ax: Any,
    rows: list[dict[str, Any]],
    style: str,
    *,
    color: str,
    label: str,
    text: Callable[[dict[str, Any]], str] | None = None,
) -> None:
    """One set of points (replica-hours, violation minutes), each annotated with ``text``."""
    ax.plot(
        [r["replica_hours"] for r in rows],
        [r["violation_minutes"] for r in rows],
        style,
        color=color,
        label=label,
    )
    for r in rows if text is not None else ():
        ax.annotate(text(r), (r["replica_hours"], r["violation_minutes"]), fontsize=7)


def _draw(out: Path, xlabel: str, title: str, fill: Callable[[Any], None], log: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    fill(ax)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(xlabel.replace("replica-hours", "SLO-violation minutes"))
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def _grid_label(r: dict[str, Any]) -> str:
    """A grid point's label: ε and the scale-down window, the session ε and the burst
    quantile where set."""
    text = f"ε={r['wait_probability']:g}, {r['scale_down_window']:g}s"
    if r.get("session_wait_probability") is not None:
        text += f", s={r['session_wait_probability']:g}"
    if r.get("session_new_window") is not None:
        text += f", new {r['session_new_window']:g}s"
    if r.get("burst_quantile") is not None:
        hold = " hold" if r.get("burst_hold_only") else ""
        text += f", b={r['burst_quantile']:g}{hold}"
    return text


def plot_frontier(rows: list[dict[str, Any]], out: Path, name: str) -> None:
    """The fitting period: ours at every grid point, the peers and the oracle."""

    def fill(ax: Any) -> None:
        grid = [r for r in rows if "wait_probability" in r]
        _series(
            ax,
            grid,
            "o",
            color=OURS_COLORS[0],
            label="predictive (grid)",
            text=_grid_label,
        )
        for r in rows:
            if r.get("policy") in PEER_COLORS:
                _series(ax, [r], "s", color=PEER_COLORS[r["policy"]], label=r["policy"])

    title = f"{name}: the trade-off on the fitting period"
    _draw(out, "replica-hours (fitting period)", title, fill, log=False)


def plot_report_frontier(rows: list[dict[str, Any]], out: Path, name: str) -> None:
    """The report period: ours at every grid point (a line per ``wait_probability``), the
    HPA at every stabilisation window (shown, never used to choose)."""

    def fill(ax: Any) -> None:
        hpa = sorted((r for r in rows if r["policy"] == "hpa"), key=lambda r: r["replica_hours"])
        _series(
            ax,
            hpa,
            "s-",
            color=PEER_COLORS["hpa"],
            label="HPA, scale-down stabilisation (s)",
            text=lambda r: f"{r['scale_down_stabilization']:g}",
        )
        ours = [r for r in rows if r["policy"] == "predictive"]
        for i, eps in enumerate(sorted({r["wait_probability"] for r in ours})):
            line = sorted(
                (r for r in ours if r["wait_probability"] == eps),
                key=lambda r: r["replica_hours"],
            )
            _series(
                ax,
                line,
                "o-",
                color=OURS_COLORS[i % len(OURS_COLORS)],
                label=f"predictive, ε={eps:g}, scale_down_window (s)",
                text=lambda r: f"{r['scale_down_window']:g}",
            )

    title = f"{name}: the trade-off on the report period (not used for tuning)"
    _draw(out, "replica-hours (report period)", title, fill, log=True)
