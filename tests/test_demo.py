"""``prsm-perf demo`` runs end to end without a terminal and reports what happened."""

from __future__ import annotations

import asyncio
import io

import pytest
from rich.console import Console

from prsm.performance._demo import run_demo, summary
from prsm.performance.cli import main
from prsm.performance.clock import ManualClock


async def test_demo_runs_and_prints_the_table(clock: ManualClock) -> None:
    out = io.StringIO()
    demo = asyncio.create_task(
        run_demo(40, "intelligent", 1, 0.4, Console(file=out, width=120), clock=clock)
    )
    for _ in range(5000):  # nodes and pacing sleep on the clock: move it on (10 s at most)
        if demo.done():
            break
        for _ in range(5):
            await asyncio.sleep(0)
        clock.advance(0.002)
    else:
        demo.cancel()
        pytest.fail("the demo did not finish within 10 s on its clock")
    stats = demo.result()
    text = out.getvalue()
    for name in ("fast", "medium", "slow", "flaky", "breaker", "p99 ms"):
        assert name in text
    assert "sent 40/40" in text
    assert stats.ok + stats.failed == 40
    assert summary(stats).startswith(f"done: {stats.ok} answered, {stats.failed} failed")


def test_demo_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--requests", "0"]) == 2
    assert "--requests must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--strategy", "fastest"])
