"""GPU management against the fake NVML, and the real "no GPU" path on this machine."""

from __future__ import annotations

import asyncio
import logging

import pytest

from prsm.performance.batching import BatcherSettings, BatchTuner
from prsm.performance.clock import ManualClock
from prsm.performance.errors import ConfigError, RequestValidationError
from prsm.performance.gpu import (
    FakeDevice,
    FakeNVML,
    GPUMemoryManager,
    GPUMonitor,
    GPUProcess,
    GPURequirements,
    GPUResourceManager,
    GPUScheduler,
    ModelFootprint,
    PyNVML,
)
from prsm.performance.gpu._memory import best_fit
from prsm.performance.gpu._nvml import MiB
from prsm.performance.gpu._requirements import parameters_in_name
from prsm.performance.types import AIRequest

GiB = 1024 * MiB


def fake(*free_gib: float, total_gib: float = 16) -> FakeNVML:
    return FakeNVML(
        FakeDevice(
            name=f"Fake {i}",
            total_bytes=int(total_gib * GiB),
            used_bytes=int((total_gib - f) * GiB),
        )
        for i, f in enumerate(free_gib)
    )


def test_best_fit_picks_the_tightest_device_that_fits() -> None:
    assert best_fit({0: 10 * GiB, 1: 3 * GiB, 2: 5 * GiB}, 2 * GiB) == 1
    assert best_fit({0: 10 * GiB, 1: 3 * GiB, 2: 5 * GiB}, 4 * GiB) == 2
    assert best_fit({0: 1 * GiB}, 2 * GiB) is None


def test_monitor_reads_memory_utilisation_temperature_and_processes() -> None:
    nvml = fake(12)
    nvml.devices[0].utilization = 0.42
    nvml.devices[0].processes.append(GPUProcess(pid=1234, used_bytes=512 * MiB))
    monitor = GPUMonitor(nvml)
    assert monitor.available
    (reading,) = monitor.read()
    assert reading.free_bytes == 12 * GiB and reading.used_bytes == 4 * GiB
    assert reading.utilization == 0.42 and reading.temperature_c == 40.0
    assert reading.processes == (GPUProcess(1234, 512 * MiB),)
    assert monitor.summary == "1 GPU(s): 0: Fake 0"
    assert monitor.snapshot()["devices"][0]["memory_free_mb"] == 12 * 1024


def test_no_gpu_is_one_clear_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="prsm.performance.gpu"):
        monitor = GPUMonitor(FakeNVML(unavailable="driver not loaded"))
    assert not monitor.available
    assert monitor.summary == "no GPU: driver not loaded; running on CPU"
    assert [r.getMessage() for r in caplog.records] == [monitor.summary]
    assert monitor.read() == []


def test_real_nvml_on_this_machine_reports_no_gpu_or_reads_devices() -> None:
    monitor = GPUMonitor(PyNVML())
    if monitor.available:  # a machine with a GPU: real readings
        readings = monitor.read()
        assert readings and all(r.total_bytes > 0 for r in readings)
        monitor.close()
    else:
        assert monitor.summary.startswith("no GPU: ")
        assert monitor.summary.endswith("; running on CPU")


async def test_allocation_without_a_gpu_runs_on_cpu() -> None:
    manager = GPUResourceManager(FakeNVML(unavailable="no NVIDIA driver"))
    alloc = await manager.allocate_gpu_resources(
        AIRequest(model="m"), GPURequirements(512, name="worker-0")
    )
    assert alloc.device == "cpu" and not alloc.on_gpu
    assert alloc.reason == "no GPU: no NVIDIA driver; running on CPU"
    manager.release("worker-0")  # nothing to give back: no error


async def test_allocation_is_best_fit_across_gpus() -> None:
    manager = GPUResourceManager(fake(10, 3, 5))
    alloc = await manager.allocate_gpu_resources(
        AIRequest(model="m"), GPURequirements(2 * 1024, name="small")
    )
    assert alloc.device == "cuda:1" and alloc.on_gpu
    alloc = await manager.allocate_gpu_resources(
        AIRequest(model="m"), GPURequirements(4 * 1024, name="medium")
    )
    assert alloc.device == "cuda:2"
    alloc = await manager.allocate_gpu_resources(
        AIRequest(model="m"), GPURequirements(8 * 1024, name="big")
    )
    assert alloc.device == "cuda:0"


def test_reservations_are_not_offered_twice() -> None:
    memory = GPUMemoryManager(GPUMonitor(fake(4)).read())
    assert memory.request("a", 3 * GiB) is not None
    # NVML still shows 4 GiB free (a has not allocated yet), but only 1 GiB is left to give
    assert memory.room() == {0: 1 * GiB}
    assert memory.request("b", 2 * GiB) is None
    assert memory.queued == [("b", 2 * GiB)]


def test_queued_reservation_is_placed_when_memory_frees() -> None:
    memory = GPUMemoryManager(GPUMonitor(fake(4, 2)).read())
    a = memory.request("a", 3 * GiB)
    assert a is not None and a.device == 0
    assert memory.request("b", 3 * GiB) is None
    assert memory.release("a") == [memory.placements["b"]]
    assert memory.placements["b"].device == 0 and memory.queued == []


def test_external_memory_freed_places_queued_work_on_refresh() -> None:
    nvml = fake(1)
    monitor = GPUMonitor(nvml)
    memory = GPUMemoryManager(monitor.read())
    assert memory.request("a", 2 * GiB) is None
    assert memory.refresh(monitor.read()) == []
    nvml.set_used(0, 4 * GiB)  # another process let 11 GiB go
    placed = memory.refresh(monitor.read())
    assert [p.name for p in placed] == ["a"]


def test_impossible_requests_are_refused_clearly() -> None:
    memory = GPUMemoryManager(GPUMonitor(fake(4)).read())
    with pytest.raises(ValueError, match="exceed every GPU"):
        memory.request("huge", 64 * GiB)
    memory.request("a", GiB)
    with pytest.raises(ValueError, match="already"):
        memory.request("a", GiB)
    with pytest.raises(KeyError):
        memory.release("nobody")


def test_fragmentation_and_consolidation_advice() -> None:
    # four 16 GiB GPUs, one small model on each: memory scattered, mostly idle
    memory = GPUMemoryManager(GPUMonitor(fake(16, 16, 16, 16)).read())
    for i in range(4):
        memory.request(f"m{i}", 2 * GiB)
    advice = memory.advice()
    assert advice.fragmentation > 0.3 and advice.utilization < 0.5
    assert advice.consolidate
    moved_from = {src for _, src, _ in advice.moves}
    moved_to = {dst for _, _, dst in advice.moves}
    assert moved_from and not (moved_from & moved_to)
    assert "fragmentation" in advice.reason


def test_no_consolidation_when_busy_or_not_fragmented() -> None:
    busy = GPUMemoryManager(GPUMonitor(fake(16, 16)).read())
    busy.request("a", 10 * GiB)
    busy.request("b", 10 * GiB)
    advice = busy.advice()
    assert not advice.consolidate and advice.utilization >= 0.5
    single = GPUMemoryManager(GPUMonitor(fake(16)).read())
    single.request("a", GiB)
    advice = single.advice()
    assert advice.fragmentation == 0.0 and not advice.consolidate


def test_thresholds_are_validated() -> None:
    with pytest.raises(ConfigError, match="fragmentation_threshold"):
        GPUMemoryManager(fragmentation_threshold=1.5)


async def test_scheduler_waits_then_places_when_memory_frees(clock: ManualClock) -> None:
    nvml = fake(3)
    monitor = GPUMonitor(nvml)
    memory = GPUMemoryManager(monitor.read())
    scheduler = GPUScheduler(monitor, memory, interval=1.0, clock=clock)
    first = await scheduler.place("a", 2 * GiB)
    waiting = asyncio.create_task(scheduler.place("b", 2 * GiB))
    await asyncio.sleep(0)
    assert not waiting.done()
    scheduler.release("a")
    placed = await waiting
    assert placed.device == first.device == 0
    # external memory: the refresh loop sees it
    loop_task = asyncio.create_task(scheduler.run())
    third = asyncio.create_task(scheduler.place("c", 2 * GiB))
    await asyncio.sleep(0)
    assert not third.done()
    nvml.set_used(0, 0)  # another process let its memory go
    clock.advance(1.0)
    assert (await third).name == "c"
    loop_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop_task


async def test_a_cancelled_placement_leaves_the_queue(clock: ManualClock) -> None:
    monitor = GPUMonitor(fake(3))
    memory = GPUMemoryManager(monitor.read())
    scheduler = GPUScheduler(monitor, memory, clock=clock)
    await scheduler.place("a", 2 * GiB)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await scheduler.place("b", 2 * GiB)
    assert memory.queued == []


def test_dynamic_batching_groups_by_key_at_the_learned_size() -> None:
    manager = GPUResourceManager(FakeNVML(unavailable="none"), max_batch_size=4)
    reqs = [("a", i) for i in range(6)] + [("b", i) for i in range(3)]
    batches = manager.dynamic_batching(reqs, key=lambda r: r[0])
    assert [len(b) for b in batches] == [4, 2, 3]
    assert all(len({k for k, _ in b}) == 1 for b in batches)
    tuner = BatchTuner(BatcherSettings(max_batch_size=8, min_samples=1))
    for size, seconds in [(1, 0.01), (2, 0.011), (4, 0.1), (8, 0.2)]:
        tuner.observe(size, seconds)
    assert tuner.chosen_size == 2
    assert [len(b) for b in manager.dynamic_batching(reqs[:6], tuner=tuner)] == [2, 2, 2]


def test_dynamic_batching_caps_batches_to_gpu_memory() -> None:
    manager = GPUResourceManager(fake(1), max_batch_size=64)
    batches = manager.dynamic_batching(list(range(40)), per_item_mb=100)
    assert [len(b) for b in batches] == [10, 10, 10, 10]  # 1 GiB room / 100 MiB per item


def test_status_reports_placements_and_advice() -> None:
    manager = GPUResourceManager(fake(16, 16))
    manager.memory.request("w0", GiB)
    status = manager.status()
    assert status["available"] and status["placements"]["w0"]["device"] == 0
    assert {"fragmentation", "utilization", "consolidate", "advice", "moves"} <= set(status)


async def test_the_post_call_derives_requirements_from_the_request() -> None:
    """``allocate_gpu_resources(ai_request)`` with one argument, as the post calls it."""
    manager = GPUResourceManager(fake(24, 8, total_gib=40))
    alloc = await manager.allocate_gpu_resources(AIRequest(model="meta-llama/Llama-3.1-8B"))
    # 8e9 parameters x 2 bytes x 1.2 = 18,310 MiB: only the 24 GiB device fits it
    assert alloc.device == "cuda:0"
    assert abs(alloc.bytes / 2**20 - 8e9 * 2 * 1.2 / 2**20) < 1.0
    assert "8B parameters in the name" in alloc.reason


def test_requirements_from_a_footprint_grow_with_the_context() -> None:
    manager = GPUResourceManager(FakeNVML(unavailable="none"))
    manager.register_model(ModelFootprint("tiny-chat", 1e8, layers=4, kv_width=256))
    short = manager.analyze_requirements(AIRequest(model="tiny-chat", context_tokens=10))
    long = manager.analyze_requirements(AIRequest(model="tiny-chat", context_tokens=10_010))
    per_token = 2 * 4 * 256 * 2
    assert abs((long.memory_mb - short.memory_mb) * 2**20 - 10_000 * per_token) < 1e-3
    assert short.source == "footprint of tiny-chat"
    minilm = manager.analyze_requirements(AIRequest(model="all-MiniLM-L6-v2"))
    assert 100 < minilm.memory_mb < 120  # 22.7M fp32 weights + 20 % + one token


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", 8e9),
        ("Qwen2.5-72B", 72e9),
        ("mistralai/Mixtral-8x7B-v0.1", 56e9),
        ("bge-reranker-335m", 335e6),
        ("gemma-2-9b-it", 9e9),
        ("gpt-4o", None),
        ("phi-3-mini-4k", None),
    ],
)
def test_parameter_count_read_from_the_name(name: str, params: float | None) -> None:
    assert parameters_in_name(name) == params


def test_unknown_model_is_refused_naming_the_field() -> None:
    manager = GPUResourceManager(FakeNVML(unavailable="none"))
    with pytest.raises(RequestValidationError) as err:
        manager.analyze_requirements(AIRequest(model="gpt-4o"))
    assert err.value.field == "model" and "register its footprint" in str(err.value)
    with pytest.raises(ConfigError, match="memory_mb"):
        GPURequirements(0)
    with pytest.raises(ConfigError, match="max_batch_size"):
        GPUResourceManager(FakeNVML(unavailable="none"), max_batch_size=0)
