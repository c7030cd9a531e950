"""Keep a long run's memory from creeping up in glibc's heap."""

from __future__ import annotations

import contextlib
import ctypes
import sys

_M_ARENA_MAX = -8
_M_MMAP_THRESHOLD = -3
_done = False


def return_large_blocks() -> None:
    """Large blocks (canvases, masks: 256 KiB and up) get their own pages, given back to the OS when freed.

    glibc raises its mmap threshold each time such a block is freed, after which blocks of that size
    come from the heap and, freed between long-lived ones, stay there: a run's peak memory then grows
    with its length. A fixed threshold turns that off, and at most four per-thread heaps keep the free
    memory in few places (process-wide, once; Linux with glibc only).
    """
    global _done
    if _done or not sys.platform.startswith("linux"):
        return
    _done = True
    with contextlib.suppress(OSError, AttributeError):  # another C library
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 256 * 1024)
        libc.mallopt(_M_ARENA_MAX, 4)  # fewer per-thread heaps, each holding its own free memory
