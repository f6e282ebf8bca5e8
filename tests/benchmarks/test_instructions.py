"""``benchmarks.instructions``: reading callgrind's per-thread dumps (no valgrind needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.instructions import parse_totals, thread_counts

from tests.benchmarks.quick import ROOT

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


def test_the_configs_are_the_monitoring_benchmarks_off_and_on(tmp_path: Path) -> None:
    import yaml
    from benchmarks.instructions import QUIET_INTERVAL, gateway_config

    quiet = yaml.safe_load(gateway_config(tmp_path, 9001, 9002).read_text())
    assert quiet["monitoring"] == {"enabled": False}
    assert quiet["orchestrator"]["monitoring_interval"] == QUIET_INTERVAL
    assert quiet["routing"] == {"signal_ttl": QUIET_INTERVAL}  # the reading stays fresh
    off = yaml.safe_load(gateway_config(tmp_path, 9001, 9002, "off", 1.0).read_text())
    assert off["monitoring"]["enabled"] is False and off["history"] == {"enabled": False}
    assert off["orchestrator"] == {"monitoring_interval": 1.0}
    assert off["routing"] == {"signal_ttl": 5.0}  # polled every second: fresh at the default
    on = yaml.safe_load(gateway_config(tmp_path, 9001, 9002, "on").read_text())
    example = yaml.safe_load((ROOT / "deploy" / "prsm-monitoring.example.yaml").read_text())
    assert on["monitoring"] == example["monitoring"]  # server_timing: false, as there
    assert on["alerts"] == example["alerts"]
    assert on["history"] == {**example["history"], "path": str(tmp_path / "history-9002.sqlite3")}
    assert on["orchestrator"] == {"monitoring_interval": QUIET_INTERVAL}
    assert on["routing"] == {"signal_ttl": QUIET_INTERVAL}
    assert on["nodes"][0]["url"] == "http://127.0.0.1:9001/v1"
    with pytest.raises(ValueError, match="choose from quiet, off, on"):
        gateway_config(tmp_path, 9001, 9002, "full")


def test_a_dump_counted_with_the_cache_simulated_gives_every_event() -> None:
    from benchmarks.instructions import misses, parse_events

    text = ("events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\nfn=(1) main\n"
            "summary: 1000 300 200 7 20 10 3 4\n")  # fmt: skip
    events = parse_events(text)
    assert events["Ir"] == 1000 and events["DLmw"] == 0  # a trailing zero left out
    assert misses(events) == {"I1": 7, "D1": 30, "LL": 7}
    with pytest.raises(ValueError, match="do not match"):
        parse_events("events: Ir\nsummary: 1 2\n")
