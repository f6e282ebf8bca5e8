"""The forecast check runs (``--quick``: our models only, a short window)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .quick import ROOT, need_file, run_quick

TRACES = ROOT.parent / "shared" / "data" / "traces"


@pytest.mark.slow
def test_forecast_check_quick(tmp_path: Path) -> None:
    need_file(TRACES / "alibaba_genai_lora_requests.csv")
    need_file(TRACES / "twitter_requests_per_minute.csv")
    src = f"{ROOT}{os.pathsep}{ROOT / 'src'}"
    data = run_quick("forecast_check", tmp_path, env={"PYTHONPATH": src})
    chosen = [r for r in data["rows"] if r["forecaster"].endswith("(chosen by the backtest)")]
    assert {r["series"] for r in chosen} == {"alibaba", "twitter"}
    assert all(r["mae"] >= 0 for r in data["rows"])
