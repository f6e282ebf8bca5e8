"""The worker process: solves off the event loop, a hard time limit, the CLI end to end."""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

from prsm.performance.cli import main
from prsm.performance.optimize import OptimizerSettings, ResourceOptimizer
from prsm.performance.optimize._solve import Event
from prsm.performance.optimize._worker import SolverWorker, _stopped

from .helpers import SMALL, need, small

pytestmark = pytest.mark.integration


async def test_solve_runs_in_the_worker_and_reports_progress() -> None:
    spec = small()
    events: list[Event] = []
    async with ResourceOptimizer(OptimizerSettings(target_gap=0.0)) as opt:
        a = await opt.optimize_allocation(spec.workloads, spec.resources, on_progress=events.append)
        pid = opt.constraint_solver._worker.pid
        assert pid is not None and pid != os.getpid()
        b = await opt.optimize_allocation(spec.workloads, spec.resources)
        assert opt.constraint_solver._worker.pid == pid  # reused
    assert a.objective == pytest.approx(0.18) and b.objective == pytest.approx(0.18)
    assert events and events[-1].phase == "done"
    assert any(e.v is not None for e in events)


async def test_the_event_loop_runs_while_the_worker_works() -> None:
    worker = SolverWorker(grace=0.2)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    try:
        await worker.call(time.sleep, (0.3,), 5.0)
    finally:
        ticker.cancel()
        worker.close()
    assert ticks > 10


async def test_a_worker_past_its_time_limit_is_stopped() -> None:
    worker = SolverWorker(grace=0.1)
    try:
        with pytest.raises(TimeoutError):
            await worker.call(time.sleep, (60,), 0.2)
        assert worker.pid is None  # stopped; the next call starts a fresh one
        assert await worker.call(math.sqrt, (16.0,), 5.0) == 4.0
    finally:
        worker.close()


def test_a_stopped_solve_returns_the_best_reported_answer() -> None:
    v, n = np.array([1, 0]), np.array([1, 0])
    best = Event(0.5, "lp-rounding", -10.0, -9.0, 0.1, v, n)
    later = Event(0.9, "highs", -10.0, -9.5, 0.05)
    out = _stopped(best, later, 3.0)
    assert out.status == "time_limit" and out.objective == -10.0
    assert out.bound == -9.5 and out.gap == pytest.approx(0.05)
    assert _stopped(None, later, 3.0).status == "no_solution"


def test_cli_writes_table_json_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    need("matplotlib")
    out_json, out_png = tmp_path / "a.json", tmp_path / "a.png"
    code = main(
        [
            "optimize",
            str(SMALL),
            "--json",
            str(out_json),
            "--png",
            str(out_png),
            "--quiet",
            "--gap",
            "0",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "gpu-h100" in printed and "search-embed" in printed
    data = json.loads(out_json.read_text())
    assert data["feasible"] and data["allocation"]["objective"] == pytest.approx(0.18)
    assert out_png.read_bytes()[:4] == b"\x89PNG"


def test_cli_infeasible_explains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "a.json"
    code = main(["optimize", str(SMALL), "--json", str(out_json), "--budget", "1", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "budget: limit 1 $/h, needs 2.9 $/h" in err
    data = json.loads(out_json.read_text())
    assert not data["feasible"] and data["conflicts"][0]["constraint"] == "budget"


def test_cli_bad_file_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "w.yaml"
    bad.write_text(SMALL.read_text().replace("requests_per_second: 6", "requests_per_second: -6"))
    assert main(["optimize", str(bad), "--quiet"]) == 2
    assert "workloads[1].requests_per_second" in capsys.readouterr().err
