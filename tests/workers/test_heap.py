"""The worker gives freed heap back: :class:`HeapTrimmer` on fakes, then a real worker process
fed batches of many shapes, whose resident size must stay flat (it grew by 100+ MB before)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest
from benchmarks.soak import WORDS  # its embedding inputs are 1-200 of them

from prsm.performance import _heap
from prsm.performance._heap import HeapTrimmer, libc_malloc_trim, resident_bytes
from prsm.performance.workers._process import WorkerProcess

MB = 2**20


class Heap:
    """A resident size the test sets, and a trim that drops it to ``live``."""

    def __init__(self, rss: int, live: int) -> None:
        self.rss = rss
        self.live = live
        self.calls: list[int] = []

    def resident(self) -> int:
        return self.rss

    def trim(self, pad: int) -> int:
        self.calls.append(pad)
        self.rss = self.live
        return 1


def test_trims_only_past_the_limit_above_the_last_trim() -> None:
    heap = Heap(rss=400 * MB, live=400 * MB)
    trimmer = HeapTrimmer(16 * MB, resident=heap.resident, trim=heap.trim, log=pytest.fail)
    heap.rss = 416 * MB  # exactly the limit: kept
    assert not trimmer.after_batch()
    heap.rss = 417 * MB
    heap.live = 405 * MB  # some of it is live: the next limit counts from there
    assert trimmer.after_batch()
    assert (heap.calls, trimmer.trims, trimmer.floor) == ([0], 1, 405 * MB)
    heap.rss = 420 * MB
    assert not trimmer.after_batch()
    heap.rss = 422 * MB
    assert trimmer.after_batch()
    assert heap.calls == [0, 0]


def test_does_nothing_without_malloc_trim_or_a_resident_size_and_says_so() -> None:
    heap = Heap(rss=400 * MB, live=400 * MB)
    lines: list[str] = []
    no_trim = HeapTrimmer(16 * MB, resident=heap.resident, trim=None, log=lines.append)
    heap.rss = 900 * MB
    assert not no_trim.active
    assert not no_trim.after_batch()
    no_rss = HeapTrimmer(16 * MB, resident=lambda: None, trim=heap.trim, log=lines.append)
    assert not no_rss.active
    assert not no_rss.after_batch()
    assert heap.calls == []
    assert lines == [
        "heap trim off: the C library has no malloc_trim (not glibc)",
        "heap trim off: no /proc/self/statm to read the resident size from",
    ]


def test_a_missing_statm_is_none_and_other_read_errors_are_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_heap, "STATM", tmp_path / "absent")
    assert resident_bytes() is None
    monkeypatch.setattr(_heap, "STATM", tmp_path)  # a directory: IsADirectoryError
    with pytest.raises(IsADirectoryError):
        resident_bytes()


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="limit: must be >= 0 bytes, got -1"):
        HeapTrimmer(-1, resident=resident_bytes, trim=None, log=pytest.fail)


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc")
def test_this_platform_provides_both() -> None:
    if sys.platform == "linux" and libc_malloc_trim() is None:
        pytest.skip("a C library without malloc_trim (not glibc)")
    rss = resident_bytes()
    assert rss is not None and rss > MB
    assert HeapTrimmer.for_this_process(pytest.fail).active


PROBE = ["How do vaccines work?", " ".join(WORDS * 8)]


def vm_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.skipif(libc_malloc_trim() is None or resident_bytes() is None, reason="glibc only")
async def test_a_worker_stays_flat_over_batches_of_many_shapes() -> None:
    pytest.importorskip("sentence_transformers")
    rng = random.Random(7)
    worker = WorkerProcess("heap", device="cpu", threads=1)
    await worker.start()
    try:
        assert worker.pid is not None
        first = await worker.embed(PROBE)
        sizes: dict[int, int] = {}
        for batch in range(1, 51):
            texts = [
                " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 200)))
                for _ in range(rng.randint(1, 16))
            ]
            await worker.embed(texts)
            if batch in (10, 50):
                await worker.ping(60.0)  # answered once the trim after the batch is done
                sizes[batch] = vm_rss(worker.pid)
        again = await worker.embed(PROBE)
    finally:
        await worker.stop()
    # Before the trim: +112 MB from batch 10 to 50, still growing; now at most
    # the trimmer's 16 MB limit above what the process holds, plus what it really keeps.
    growth = sizes[50] - sizes[10]
    assert growth < 40 * MB, f"resident size grew {growth / MB:.0f} MB from batch 10 to 50"
    np.testing.assert_allclose(again.vectors, first.vectors, rtol=0, atol=1e-6)
