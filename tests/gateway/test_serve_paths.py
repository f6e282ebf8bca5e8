"""``prsm-perf serve`` with a data directory or a configured path it cannot create: a clear
error naming the setting and the path (exit status 2), not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from prsm.performance.cli import main

QUIET = {"workers": {"enabled": False}, "semantic": {"enabled": False}}


def config_file(tmp_path: Path, extra: dict[str, object]) -> Path:
    path = tmp_path / "prsm.yaml"
    path.write_text(yaml.safe_dump({**QUIET, **extra}))
    return path


def test_a_data_directory_under_a_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("PRSM_DATA_DIR", str(blocker / "data"))
    code = main(["serve", "--config", str(config_file(tmp_path, {})), "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert "PRSM_DATA_DIR: cannot create or open" in err
    assert str(blocker / "data") in err
    assert "Traceback" not in err


def test_a_configured_path_is_named_as_the_configs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PRSM_DATA_DIR", str(tmp_path / "data"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    history = blocker / "metrics.sqlite3"
    cfg = config_file(tmp_path, {"history": {"path": str(history)}})
    code = main(["serve", "--config", str(cfg), "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"path: cannot create or open {str(blocker)!r} (File exists)" in err
    assert "choose in the config" in err
