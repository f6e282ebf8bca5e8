"""Fast primal heuristics on a :class:`~._problem.Problem`: greedy, LP rounding, local search.

All of them work on :class:`Assignment`, a mutable solution (steps per pair, load and units per
type, traffic served per class) whose :meth:`~Assignment.best_cover` finds where serving a
class's missing traffic raises the objective most, paying for new units only when a type's
paid units have no room left, and never above a type's available units or the budget.

* :func:`greedy` is the floor: workloads biggest first, each whole on its best type at the
  time (what an operator's script would do).
* :func:`round_lp` starts from an LP optimum: the whole steps where the LP put them, the
  missing fractions served where they fit best, surplus trimmed; then :func:`improve`.
* :func:`improve` is a local search with two moves: *drop a unit* (move what runs on a type's
  last unit into room elsewhere) and *relocate* (move one pair's replicas to a better place);
  a move is kept only if the objective rises. It stops at a local optimum or its deadline.
"""

from __future__ import annotations

import time

import numpy as np

from ._problem import FloatArray, IntArray, Problem

_EPS = 1e-9
Snapshot = tuple[IntArray, FloatArray, IntArray, FloatArray, float]


class Assignment:
    """A solution of ``p``, complete or not: ``v`` steps per pair, ``n`` units per type."""

    def __init__(self, p: Problem, v: IntArray | None = None, paid: IntArray | None = None) -> None:
        self.p = p
        self.capsafe = np.where(p.cap > 0, p.cap, np.inf)
        self.limit = p.available.copy()
        # units held whatever the load (the LP's choice while rounding); see release()
        self.paid = np.zeros(p.n_types, dtype=np.int64) if paid is None else paid.copy()
        self.v = np.zeros(p.n_pairs, dtype=np.int64) if v is None else v.astype(np.int64)
        fv = self.v.astype(np.float64)
        self.load = p.loads(fv)
        self.n = np.maximum(self.paid, self._units(self.load, self.capsafe))
        self.cov = p.coverage(fv)
        self.perf = p.performance(fv)

    @staticmethod
    def _units(load: FloatArray, cap: FloatArray) -> IntArray:
        u = np.ceil((load / cap).max(axis=-1) - 1e-9)
        out: IntArray = np.maximum(u, 0).astype(np.int64)
        return out

    # ------------------------------------------------------------------ state
    @property
    def cost(self) -> float:
        return float(self.p.cost @ self.n)

    @property
    def objective(self) -> float:
        return -self.p.cost_weight * self.cost + self.p.performance_weight * self.perf

    def deficit(self) -> FloatArray:
        """Workloads' worth of traffic not yet served, per class (≥ 0)."""
        return np.maximum(self.p.class_count - self.cov, 0.0)

    def complete(self) -> bool:
        return bool((self.deficit() <= 1e-6).all())

    def feasible(self) -> bool:
        p = self.p
        ok = self.complete() and bool((self.n <= p.available).all())
        return ok and (p.budget is None or self.cost <= p.budget + 1e-6)

    def snapshot(self) -> Snapshot:
        return self.v.copy(), self.load.copy(), self.n.copy(), self.cov.copy(), self.perf

    def restore(self, snap: Snapshot) -> None:
        v, load, n, cov, perf = snap
        self.v, self.load, self.n, self.cov, self.perf = (
            v.copy(),
            load.copy(),
            n.copy(),
            cov.copy(),
            perf,
        )

    def add(self, pair: int, k: int = 1) -> None:
        """Add ``k`` steps (negative: remove) on ``pair``."""
        p = self.p
        t = int(p.pair_type[pair])
        self.v[pair] += k
        self.load[t] = np.maximum(self.load[t] + k * p.unit_demand[pair], 0.0)
        self.n[t] = max(int(self.paid[t]), int(self._units(self.load[t], self.capsafe[t])))
        self.cov[p.pair_class[pair]] += k * p.cover[pair]
        self.perf += k * float(p.unit_perf[pair])

    # ------------------------------------------------------------------ moves
    def best_cover(
        self, c: int, amount: float, *, exclude_type: int = -1, split: bool = True
    ) -> tuple[int, int]:
        """Where to serve up to ``amount`` (≤ 1) more of class ``c``'s traffic on one type:
        the pair and its number of steps with the best objective change per workload's worth
        served; ``(-1, 0)`` if nothing fits. Either all of ``amount`` on one type (opening
        units as needed), or, for a workload that may split, as much of it as fits in room
        already paid for."""
        p = self.p
        lo, hi = np.searchsorted(p.pair_class, [c, c + 1])
        pairs = np.arange(lo, hi)
        t = p.pair_type[pairs]
        head = p.var_ub[pairs] - self.v[pairs]
        ok = head > 0
        if exclude_type >= 0:
            ok &= t != exclude_type
        k = np.minimum(np.ceil(amount / p.cover[pairs] - 1e-9).astype(np.int64), head)
        k = np.maximum(k, 0)
        ok &= k * p.cover[pairs] >= amount - 1e-9
        new_n = np.maximum(
            self.paid[t],
            self._units(self.load[t] + k[:, None] * p.unit_demand[pairs], self.capsafe[t]),
        )
        ok &= new_n <= self.limit[t]
        dcost = p.cost[t] * (new_n - self.n[t])
        if p.budget is not None:
            ok &= self.cost + dcost <= p.budget + 1e-6
        served = np.maximum(k * p.cover[pairs], 1e-12)
        rate = -p.cost_weight * dcost + p.performance_weight * k * p.unit_perf[pairs]
        rate = np.where(ok, rate / served, -np.inf)
        # room already paid for: as many steps as fit without a new unit
        room = self.n[t][:, None] * p.cap[t] - self.load[t]
        with np.errstate(divide="ignore", invalid="ignore"):
            fit = np.where(p.unit_demand[pairs] > 0, room / p.unit_demand[pairs], np.inf)
        k_room = np.minimum(np.floor(fit.min(axis=1) + 1e-9), np.minimum(k, head)).astype(np.int64)
        part = split & (p.step[pairs] == 1) & (k_room > 0) & (head > 0)
        if exclude_type >= 0:
            part &= t != exclude_type
        rate_room = np.where(
            part, p.performance_weight * p.unit_perf[pairs] / p.cover[pairs], -np.inf
        )
        best, best_room = int(np.argmax(rate)), int(np.argmax(rate_room))
        if rate_room[best_room] > rate[best] and rate_room[best_room] > -np.inf:
            return int(pairs[best_room]), int(k_room[best_room])
        if rate[best] == -np.inf:
            return -1, 0
        return int(pairs[best]), int(k[best])

    def cover_deficit(self, c: int, *, exclude_type: int = -1) -> bool:
        """Serve all of class ``c``'s missing traffic, a workload's worth at a time."""
        while (d := float(self.p.class_count[c] - self.cov[c])) > 1e-6:
            pair, k = self.best_cover(c, min(d, 1.0), exclude_type=exclude_type)
            if pair < 0 and exclude_type >= 0:
                pair, k = self.best_cover(c, min(d, 1.0))
            if pair < 0:
                return False
            self.add(pair, k)
        return True

    def release(self) -> None:
        """Stop holding paid units: each type keeps only the units its load needs."""
        self.paid[:] = 0
        self.n = self._units(self.load, self.capsafe)

    def trim(self) -> None:
        """Remove steps that serve more than a class's traffic (never lowers the objective:
        each step's performance term is ≤ 0 and fewer steps never need more units)."""
        p = self.p
        for c in np.flatnonzero(self.cov - p.class_count > 1e-6).tolist():
            lo, hi = np.searchsorted(p.pair_class, [c, c + 1])
            pairs = np.arange(lo, hi)
            for pair in pairs[np.argsort(p.unit_perf[pairs])].tolist():
                while self.v[pair] > 0 and self.cov[c] - p.cover[pair] >= p.class_count[c] - 1e-9:
                    self.add(pair, -1)


def _size(p: Problem) -> FloatArray:
    """A class's size: the smallest cost share of units one workload of it takes alone."""
    whole = p.unit_demand * (1.0 / p.cover)[:, None]
    share = (whole / np.where(p.cap[p.pair_type] > 0, p.cap[p.pair_type], np.inf)).max(axis=1)
    out = np.full(p.n_classes, np.inf)
    np.minimum.at(out, p.pair_class, share * p.cost[p.pair_type])
    return out


def greedy(p: Problem) -> Assignment:
    """The floor: biggest workloads first, each whole on its best type at that moment (no
    splitting). The result may be incomplete (``complete()`` false) if something fits nowhere.
    """
    a = Assignment(p)
    for c in np.argsort(-_size(p), kind="stable").tolist():
        for _ in range(int(p.class_count[c])):
            pair, k = a.best_cover(c, 1.0, split=False)
            if pair < 0:
                return a
            a.add(pair, k)
    return a


def round_lp(p: Problem, v_lp: FloatArray, n_lp: FloatArray, *, deadline: float) -> Assignment:
    """A solution near the LP point (``v_lp``, ``n_lp``), improved by :func:`improve` until
    ``deadline`` (a ``time.perf_counter()`` value). Incomplete if some traffic fits nowhere.

    The LP's units, rounded up, are held while the fractional rest is served, so it goes
    into the room the LP paid for rather than each piece opening the cheapest unit on its own;
    the units left unused are then released and :func:`improve` removes partly used ones.
    """
    paid = np.minimum(np.ceil(n_lp - 1e-6), p.available).astype(np.int64)
    a = Assignment(p, np.floor(v_lp + 1e-6).astype(np.int64), paid=paid)
    for c in np.argsort(-_size(p), kind="stable").tolist():
        if not a.cover_deficit(c):
            a.release()
            return a
    a.trim()
    a.release()
    improve(a, deadline=deadline)
    return a


def improve(a: Assignment, *, deadline: float) -> None:
    """Local search on the complete solution ``a`` until no move helps or ``deadline``."""
    while time.perf_counter() < deadline:
        before = a.objective
        _drop_units(a, deadline)
        _relocate(a, deadline)
        if a.objective <= before + 1e-9:
            return


def _drop_units(a: Assignment, deadline: float) -> None:
    """Try to free the last unit of each type, the most expensive unused room first."""
    p = a.p
    used = np.flatnonzero(a.n > 0)
    fill = (a.load[used] / a.capsafe[used]).max(axis=1) - (a.n[used] - 1)
    for t in used[np.argsort(-(1.0 - fill) * p.cost[used])].tolist():
        if time.perf_counter() > deadline:
            return
        if a.n[t] == 0:
            continue
        before = a.objective
        snap = a.snapshot()
        target = (a.n[t] - 1) * p.cap[t]
        on_t = np.flatnonzero((p.pair_type == t) & (a.v > 0))
        share = (p.unit_demand[on_t] / a.capsafe[t]).max(axis=1)
        touched: set[int] = set()
        for pair in on_t[np.argsort(share)].tolist():  # the smallest steps first
            while a.v[pair] > 0 and (a.load[t] > target + 1e-9).any():
                a.add(pair, -1)
                touched.add(int(p.pair_class[pair]))
            if not (a.load[t] > target + 1e-9).any():
                break
        saved = int(a.limit[t])
        a.limit[t] = a.n[t]  # the freed unit stays closed while the evicted move
        a.paid[t] = min(int(a.paid[t]), int(a.n[t]))
        placed = all(a.cover_deficit(c, exclude_type=t) for c in sorted(touched))
        a.limit[t] = saved
        if placed:
            a.trim()
        if not placed or a.objective <= before + 1e-9:
            a.restore(snap)


def _relocate(a: Assignment, deadline: float) -> None:
    """Move all of one pair's steps to wherever serves that traffic best."""
    p = a.p
    for pair in np.flatnonzero(a.v > 0).tolist():
        if time.perf_counter() > deadline:
            return
        if a.v[pair] == 0:
            continue
        c = int(p.pair_class[pair])
        before = a.objective
        snap = a.snapshot()
        a.add(pair, -int(a.v[pair]))
        if not a.cover_deficit(c) or a.objective <= before + 1e-9:
            a.restore(snap)
        else:
            a.trim()
