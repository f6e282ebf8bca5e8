"""Worker settings and layout without starting processes: defaults follow the cores, bad
values name the field, batches go to the least busy ready worker."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from prsm.performance.errors import ConfigError
from prsm.performance.workers import (
    LocalWorkerPool,
    WorkerSettings,
    _pool as pool_module,
    _settings as settings_module,
)
from prsm.performance.workers._upstream import LocalModelUpstream, least_busy


@pytest.mark.parametrize(("cores", "count"), [(1, 1), (2, 2), (3, 3), (16, 4)])
def test_default_count_is_one_worker_per_core_up_to_four(
    monkeypatch: pytest.MonkeyPatch, cores: int, count: int
) -> None:
    monkeypatch.setattr(settings_module, "usable_cores", lambda: cores)
    assert WorkerSettings().count == count
    assert WorkerSettings(count=1).count == 1


@pytest.mark.parametrize(("cores", "count", "threads"), [(2, 2, 1), (16, 4, 4), (2, 1, 2)])
def test_threads_share_the_cores_out(
    monkeypatch: pytest.MonkeyPatch, cores: int, count: int, threads: int
) -> None:
    monkeypatch.setattr(pool_module, "usable_cores", lambda: cores)
    pool = LocalWorkerPool(WorkerSettings(count=count, device="cpu"))
    assert [w.threads for w in pool.workers] == [threads] * count
    assert LocalWorkerPool(WorkerSettings(count=2, threads=3)).workers[0].threads == 3


def test_model_dir_reaches_every_worker_and_must_not_be_empty() -> None:
    pool = LocalWorkerPool(WorkerSettings(count=2, model_dir="/models/minilm"))
    assert [w.model_dir for w in pool.workers] == ["/models/minilm"] * 2
    with pytest.raises(ConfigError, match="model_dir"):
        WorkerSettings(model_dir="")


@dataclass
class Worker:
    id: str
    state: str
    in_flight: int


def worker(name: str, state: str, in_flight: int) -> Worker:
    return Worker(name, state, in_flight)


def test_least_busy_takes_the_ready_worker_with_fewest_calls() -> None:
    a, b, c = worker("a", "ready", 2), worker("b", "ready", 1), worker("c", "lost", 0)
    assert least_busy([a, b, c]) is b
    first = worker("x", "ready", 0)
    assert least_busy([first, worker("y", "ready", 0)]) is first
    assert least_busy([c]) is None


def test_workers_on_one_device_share_one_batcher_sized_for_all_of_them() -> None:
    pool = LocalWorkerPool(WorkerSettings(count=3, device="cpu"))
    upstream = LocalModelUpstream(pool)
    assert list(upstream.batchers) == ["cpu"]
    shared = upstream.batchers["cpu"]
    assert shared.settings.max_concurrent_batches == 3
    assert all(upstream.batcher_for(w.id) is shared for w in pool.workers)
    with pytest.raises(KeyError):
        upstream.batcher_for("nope")
