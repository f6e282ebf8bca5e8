"""``prsm-perf demo`` runs end to end without a terminal and reports what happened."""

from __future__ import annotations

import pytest

from prsm.performance.cli import main


def test_demo_runs_and_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--requests", "40", "--duration", "0.4", "--seed", "1"])
    out = capsys.readouterr().out
    assert code == 0
    for name in ("fast", "medium", "slow", "flaky", "breaker", "p99 ms"):
        assert name in out
    assert "sent 40/40" in out
    assert "done:" in out


def test_demo_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--requests", "0"]) == 2
    assert "--requests must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--strategy", "fastest"])
