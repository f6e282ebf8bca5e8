"""The allocation as a PNG: what each resource type costs, and what runs on it (matplotlib,
from the ``optimize`` extra)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DependencyMissingError
from ._result import Allocation


def plot_allocation(
    allocation: Allocation, kinds: dict[str, str], png: str | Path, *, top: int = 25
) -> Path:
    """Draw ``allocation`` to ``png``: cost per resource type (the ``top`` most expensive)
    and the replicas of each workload kind on them. ``kinds`` maps workload → kind."""
    try:
        import matplotlib
    except ImportError as exc:
        raise DependencyMissingError("matplotlib", "optimize", "drawing the allocation") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    used = sorted(allocation.resources, key=lambda r: -r.cost_per_hour)[:top]
    names = [r.resource for r in used]
    per_kind: dict[str, dict[str, int]] = {}
    for w in allocation.workloads:
        kind = kinds.get(w.workload, "?")
        for t, k in w.replicas.items():
            per_kind.setdefault(kind, {}).setdefault(t, 0)
            per_kind[kind][t] += k
    height = max(3.0, 0.32 * len(names) + 1.5)
    fig, (ax_cost, ax_rep) = plt.subplots(1, 2, figsize=(13, height), sharey=True)
    ys = list(range(len(names)))
    ax_cost.barh(ys, [r.cost_per_hour for r in used], color="#4c72b0")
    for y, r in zip(ys, used, strict=True):
        ax_cost.text(r.cost_per_hour, y, f" {r.units} u", va="center", fontsize=7)
    ax_cost.set_yticks(ys)
    ax_cost.set_yticklabels(names, fontsize=7)
    ax_cost.invert_yaxis()
    ax_cost.set_xlabel("$/hour")
    ax_cost.set_title("cost per resource type (units)")
    left = [0.0] * len(names)
    for kind in sorted(per_kind):
        vals = [float(per_kind[kind].get(n, 0)) for n in names]
        ax_rep.barh(ys, vals, left=left, label=kind)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax_rep.set_xlabel("replicas")
    ax_rep.set_title("replicas by workload kind")
    ax_rep.legend(fontsize=7, loc="lower right")
    shown = (
        ""
        if len(allocation.resources) <= top
        else f" (top {top} of {len(allocation.resources)} types)"
    )
    fig.suptitle(
        f"{len(allocation.workloads)} workloads: {allocation.cost_per_hour:,.2f} $/h, "
        f"objective {allocation.objective:,.1f}, gap {allocation.gap:.2%} "
        f"({allocation.solver}, {allocation.status}){shown}",
        fontsize=10,
    )
    fig.tight_layout()
    out = Path(png)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
