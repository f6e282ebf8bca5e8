"""Give the heap a worker's batches freed back to the OS once it holds too much of it.

A forward pass allocates tensors sized by the chunk's shape (texts × tokens; the attention
scores of eight 256-token texts are 25 MB), then frees them. glibc's malloc serves the first
large ones with ``mmap`` and returns them on ``free``, but every such ``free`` raises its
mmap threshold (up to 32 MB) to that size, so from then on they come from the heap, whose
free space it keeps and reuses only where the next request fits. Batches of ever new shapes
leave more and more of it free but resident: measured with 2 threads, the worker's anonymous
memory went from 379 MB after loading to 940 MB after 800 batches of 1-16 texts of 1-200
words, still growing; ``malloc_trim(0)`` brought it back to 386-389 MB at any point, so it
was free memory, not live objects. :class:`HeapTrimmer` calls ``malloc_trim`` after a batch
whenever the resident size has grown by more than :data:`TRIM_ABOVE` since the last trim:
the worker stays within that much of what it really holds, and a run of batches of shapes
it has seen (reusing the same free blocks) trims rarely. Where there is no glibc
``malloc_trim`` (macOS, musl) or no ``/proc/self/statm`` (macOS), it does nothing and says so
once, through ``log``, when it starts. The embedding worker and the helper process
(:mod:`prsm.performance._helper_process`: the semantic cache's verifier and cross-encoder)
both run it.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from pathlib import Path

#: resident growth (bytes) since the last trim past which the next batch trims the heap
TRIM_ABOVE = 16 * 2**20

STATM = Path("/proc/self/statm")


def resident_bytes() -> int | None:
    """This process's resident size (``/proc/self/statm``), or None where the system has no
    such file; any other error reading it is raised."""
    try:
        text = STATM.read_text()
    except FileNotFoundError:
        return None
    return int(text.split()[1]) * os.sysconf("SC_PAGE_SIZE")


def libc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


class HeapTrimmer:
    """After each batch, :meth:`after_batch`: trim the heap once the resident size is more
    than ``limit`` bytes above where the last trim (or the start) left it."""

    def __init__(
        self,
        limit: int,
        *,
        resident: Callable[[], int | None],
        trim: Callable[[int], int] | None,
        log: Callable[[str], None],
    ) -> None:
        if limit < 0:
            raise ValueError(f"limit: must be >= 0 bytes, got {limit!r}")
        self.limit = limit
        self._resident = resident
        self._trim = trim
        self.floor = resident()
        self.trims = 0
        if trim is None:
            log("heap trim off: the C library has no malloc_trim (not glibc)")
        elif self.floor is None:
            log(f"heap trim off: no {STATM} to read the resident size from")

    @classmethod
    def for_this_process(cls, log: Callable[[str], None]) -> HeapTrimmer:
        """:data:`TRIM_ABOVE`, this process's resident size and the C library's trim."""
        return cls(TRIM_ABOVE, resident=resident_bytes, trim=libc_malloc_trim(), log=log)

    @property
    def active(self) -> bool:
        """Whether this platform lets it trim (a ``malloc_trim`` and a resident size)."""
        return self._trim is not None and self.floor is not None

    def after_batch(self) -> bool:
        """Trim if the resident size has grown past the limit; whether it trimmed."""
        if self._trim is None or self.floor is None:
            return False
        now = self._resident()
        if now is None or now - self.floor <= self.limit:
            return False
        self._trim(0)
        self.trims += 1
        self.floor = self._resident()
        return True
