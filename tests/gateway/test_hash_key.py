"""``prsm-perf hash-key``: the key from the argument, a pipe, or the prompt; no key is a clear
error (exit 2), not a traceback (before, an empty stdin raised ``EOFError`` from getpass)."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from prsm.performance.cli import main
from prsm.performance.gateway._settings import hash_key


def test_the_argument_is_hashed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash-key", "sk-team-a"]) == 0
    assert capsys.readouterr().out.strip() == hash_key("sk-team-a")


def test_a_piped_key_is_its_first_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("sk-team-a\nignored\n"))
    assert main(["hash-key"]) == 0
    assert capsys.readouterr().out.strip() == hash_key("sk-team-a")


def test_no_key_is_an_error_naming_it_not_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "prsm.performance.cli", "hash-key"],
        stdin=subprocess.DEVNULL,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "prsm-perf hash-key: error: key: no key given" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
