"""The semantic benchmark's GIL figure: py-spy's raw samples counted by thread."""

from __future__ import annotations

import pytest
from benchmarks._semantic_loop import _gil_samples

RAW = """\
thread (7575): MainThread;_run_module_as_main (<frozen runpy>:198);beat (x.py:60) 40
thread (7575);_find_and_load (<frozen importlib._bootstrap>:1176) 9
thread (7579): prsm-verify_0;_worker (thread.py:83);recv (connection.py:250) 3
thread (7579): prsm-verify_0;_worker (thread.py:83);score (v.py:70) 2
thread (7600): asyncio_0;_worker (thread.py:83) 1
"""


def test_samples_holding_the_gil_off_the_loop_thread_are_counted() -> None:
    # the loop's thread before it has its name (start-up) is still the loop's
    assert _gil_samples(RAW) == {"off_loop_gil_samples": 6, "gil_samples": 55}


def test_no_samples_is_an_error_not_a_zero() -> None:
    with pytest.raises(RuntimeError, match="no samples"):
        _gil_samples("")
