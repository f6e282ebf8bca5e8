"""``benchmarks.instructions``: reading callgrind's per-thread dumps (no valgrind needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.instructions import parse_totals, thread_counts

DUMP = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\n{line}\nfn=(1) main\n5 {n}\n"


def test_a_dump_totals_from_its_summary_or_totals_line() -> None:
    assert parse_totals(DUMP.format(line="summary: 250477642", n=7)) == 250477642
    assert parse_totals(DUMP.format(line="totals: 12", n=12)) == 12
    with pytest.raises(ValueError, match="no summary"):
        parse_totals("events: Ir\nfn=(1) main\n5 3\n")


def test_thread_counts_reads_only_the_asked_dump_of_the_process(tmp_path: Path) -> None:
    for name, total in (("callgrind.out.41.1-01", 900), ("callgrind.out.41.1-03", 40),
                        ("callgrind.out.41.2-01", 5), ("callgrind.out.42.1-01", 7),
                        ("callgrind.out.41-01", 3)):  # fmt: skip
        (tmp_path / name).write_text(DUMP.format(line=f"summary: {total}", n=total))
    assert thread_counts(tmp_path, 41, 1) == {1: 900, 3: 40}
    with pytest.raises(RuntimeError, match="no dump 3 of process 41"):
        thread_counts(tmp_path, 41, 3)
