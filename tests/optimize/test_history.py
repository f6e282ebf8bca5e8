"""Workload rates from the monitoring history (``prsm-perf optimize --from-history``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from prsm.performance.cli import main
from prsm.performance.errors import ConfigError
from prsm.performance.monitoring._sqlite import SQLiteMetricsStore
from prsm.performance.monitoring._store import MemoryMetricsStore, Sample, labels_key
from prsm.performance.optimize._history import measured_rates, with_measured_rates
from prsm.performance.optimize._io import load_allocation_file

SMALL = Path(__file__).parent / "small.yaml"
T0 = 1_800_000_000.0  # a minute boundary


def _rates(store: MemoryMetricsStore | SQLiteMetricsStore, model: str, per_minute: list[float],
           instance: str | None = None, start: float = T0) -> None:  # fmt: skip
    labels = {"model": model} | ({"instance": instance} if instance else {})
    store.write(
        Sample("model.request_rate", labels_key(labels), start + 60 * i + s, rate)
        for i, rate in enumerate(per_minute)
        for s in range(0, 60, 10)  # six samples a minute, the same rate
    )


def test_the_quantile_of_per_minute_rates_summed_over_processes() -> None:
    store = MemoryMetricsStore()
    _rates(store, "chat", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], instance="gateway-0")
    _rates(store, "chat", [10] * 10, instance="gateway-1")
    _rates(store, "embed", [0.5] * 10)
    got = measured_rates(store, since=T0, until=T0 + 600, quantile=1.0)
    assert got == {"chat": pytest.approx(20.0), "embed": pytest.approx(0.5)}
    got = measured_rates(store, since=T0, until=T0 + 600, quantile=0.5)
    assert got["chat"] == pytest.approx(15.5)  # the median of 11..20
    with pytest.raises(ConfigError, match="quantile"):
        measured_rates(store, since=T0, until=T0 + 600, quantile=0.0)


def test_workloads_take_the_measured_rate_and_notes_name_the_rest() -> None:
    spec = load_allocation_file(SMALL)
    names = [w.name for w in spec.workloads]
    out, notes = with_measured_rates(spec.workloads, {names[0]: 12.5, "unknown-model": 3.0})
    assert out[0].requests_per_second == 12.5
    assert [w.requests_per_second for w in out[1:]] == [
        w.requests_per_second for w in spec.workloads[1:]
    ]
    assert any(n.startswith(f"{names[1]}: no history") for n in notes)
    assert any(n.startswith("unknown-model:") and "no workload" in n for n in notes)


def test_cli_from_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = tmp_path / "history.db"
    config = tmp_path / "prsm.yaml"
    config.write_text(yaml.safe_dump({"history": {"path": str(history)}}))
    spec = load_allocation_file(SMALL)
    name = spec.workloads[1].name  # chat, 6 req/s in the file
    start = (time.time() // 60 - 30) * 60
    store = SQLiteMetricsStore(history)
    _rates(store, name, [40.0] * 20, start=start)
    store.close()
    out_json = tmp_path / "a.json"
    code = main(["optimize", str(SMALL), "--from-history", "1h", "--config", str(config),
                 "--json", str(out_json), "--no-png", "--quiet", "--quantile", "0.9"])  # fmt: skip
    assert code == 0
    assert f"{spec.workloads[0].name}: no history" in capsys.readouterr().err
    data = json.loads(out_json.read_text())
    placed = {w["workload"]: w for w in data["allocation"]["workloads"]}
    assert name in placed
    # 40 req/s needs more replicas than the file's rate did
    without = tmp_path / "b.json"
    assert main(["optimize", str(SMALL), "--json", str(without), "--no-png", "--quiet"]) == 0
    before = json.loads(without.read_text())["allocation"]["workloads"]
    replicas = {w["workload"]: sum(w["replicas"].values()) for w in before}
    assert sum(placed[name]["replicas"].values()) > replicas[name]
