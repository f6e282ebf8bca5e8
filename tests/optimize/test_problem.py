"""The compiled model: eligible pairs, classes of identical workloads, the matrix."""

from __future__ import annotations

import numpy as np
import pytest

from prsm.performance.optimize._matrix import build_matrix
from prsm.performance.optimize._problem import compile_problem, gap
from prsm.performance.optimize._solve import SolveOptions, solve

from .helpers import cores, gpu, llm, small, svc


def test_identical_workloads_form_one_class() -> None:
    ws = [svc(f"w{i}") for i in range(5)] + [svc("big", cpu=5)]
    p = compile_problem(ws, [cores("a", 8, 1.0), cores("b", 4, 0.6)])
    assert p.n_classes == 2
    assert sorted(p.class_count.tolist()) == [1, 5]
    plain = compile_problem(ws, [cores("a", 8, 1.0), cores("b", 4, 0.6)], aggregate=False)
    assert plain.n_classes == 6


def test_classes_do_not_change_the_optimum() -> None:
    ws = [svc(f"w{i}") for i in range(5)]
    rs = [cores("a", 8, 1.0), cores("b", 4, 0.6)]
    opts = SolveOptions(time_limit=10, target_gap=0.0)
    grouped = solve(compile_problem(ws, rs, performance_weight=0), opts)
    single = solve(compile_problem(ws, rs, performance_weight=0, aggregate=False), opts)
    assert grouped.objective == pytest.approx(single.objective)
    # by hand: 3 cores count as 4 on both types (2 per 8-core unit, 1 per 4-core unit), so
    # 2 units of a (4 workloads, 2.00 $/h) + 1 of b (0.60) beat 3 of a (3.00) or 5 of b (3.00)
    assert grouped.objective == pytest.approx(-2.6)


def test_sla_and_fit_decide_the_pairs() -> None:
    spec = small()
    p = compile_problem(spec.workloads, spec.resources)
    types = {
        (p.workloads[p.class_members[c][0]].name, p.resources[t].name)
        for c, t in zip(p.pair_class.tolist(), p.pair_type.tolist(), strict=True)
    }
    assert ("chat", "cpu-8") not in types  # no figures for llm on a CPU
    assert {("chat", "gpu-l4"), ("chat", "gpu-h100"), ("search-embed", "cpu-8")} <= types


def test_matrix_rows_and_offset() -> None:
    p = compile_problem([llm("chat", 5.0)], [gpu("l4", 0.8, 4), gpu("h100", 2.5, 2, 11)])
    m = build_matrix(p)
    assert m.n_cols == p.n_pairs + p.n_types
    assert m.row_names[0].startswith("serve chat")
    assert m.offset == pytest.approx(2.0 * p.perf_offset)
    z = np.array([3.0, 0.0, 3.0, 0.0])  # 3 replicas on l4, 3 units
    v, n = m.split(z)
    assert m.offset - m.c @ z == pytest.approx(p.objective(v, n)[0])


def test_gap_convention() -> None:
    assert gap(-100.0, -99.0) == pytest.approx(0.01)
    assert gap(0.2, 0.7) == pytest.approx(0.5)  # |objective| < 1: absolute
    assert gap(-1.0, float("inf")) == float("inf")
