from pathlib import Path

import pytest

from prsm.performance.cli import main
from prsm.performance.monitoring import SQLiteMetricsStore

from .history import write_day


def test_analyze_prints_findings_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    db = tmp_path / "history.db"
    store = SQLiteMetricsStore(db)
    write_day(store, time.time())
    store.close()
    cfg = tmp_path / "prsm.yaml"
    cfg.write_text(f"history:\n  path: {db}\n")
    out = tmp_path / "report"
    assert main(["analyze", "--since", "24h", "--config", str(cfg), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Bottleneck" in printed and "rising_error_rate" in printed and "drain_node" in printed
    page = (out / "index.html").read_text()
    assert "bottleneck.png" in page and "Recommendations" in page
    assert (out / "bottleneck.png").stat().st_size > 0
    assert any(p.name.startswith("application_cache_hit_rate") for p in out.glob("*.png"))


def test_analyze_on_an_empty_history_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "prsm.yaml"
    cfg.write_text(f"history:\n  path: {tmp_path / 'empty.db'}\n")
    assert main(["analyze", "--config", str(cfg), "--no-report"]) == 0
    assert "0 series analysed" in capsys.readouterr().out
