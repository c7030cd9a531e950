"""Keep a long run's memory from creeping up in glibc's heap, without paging it in again and again."""

from __future__ import annotations

import contextlib
import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
#: blocks of this size and up get pages of their own, given back to the OS when freed: canvas-sized float arrays
#: (numpy asks for huge pages for them, so paging them in costs little); smaller ones are reused from the heap
MMAP_THRESHOLD = 4 << 20
#: free memory at the top of a heap kept for the next allocations rather than given back at once
TRIM_THRESHOLD = 4 << 20
_done = False


def return_large_blocks() -> None:
    """Large blocks (4 MiB and up: canvases as floats) get their own pages, given back to the OS when freed.

    glibc raises its mmap threshold each time such a block is freed, after which blocks of that size
    come from the heap and, freed between long-lived ones, stay there: a run's peak memory then grows
    with its length. A fixed threshold turns that off, and at most four per-thread heaps keep the free
    memory in few places (process-wide, once; Linux with glibc only).

    The threshold is not lower: every block mapped on its own is paged in again on first use, 4 KiB at a
    time (numpy asks for huge pages only for arrays of 4 MiB and up), which cost a 1024 px tile about
    0.5 M page faults and most of a second of system time at 256 KiB. A heap keeps up to ``TRIM_THRESHOLD``
    free at its top for the same reason. Both thresholds trade memory for page faults: higher ones fault
    less but hold more free memory, and more of it as a patch grows (docs/performance.md).
    """
    global _done
    if _done or not sys.platform.startswith("linux"):
        return
    _done = True
    with contextlib.suppress(OSError, AttributeError):  # another C library
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        libc.mallopt(_M_ARENA_MAX, 4)  # fewer per-thread heaps, each holding its own free memory
