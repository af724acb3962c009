"""Memory a run has finished with goes back to the operating system. Arrow's allocator and glibc's
keep freed blocks for reuse, so without asking them a process stays at its largest footprint:
between the stages of a million-row run that left ~400 MB held that the next stage did not reuse
(the app and the scheduler run for weeks, and peak memory has a budget: DESIGN.md §7)."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

import pyarrow as pa


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, where the C library is glibc (None elsewhere)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None
    return trim


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Return the free blocks Arrow's pool and the C allocator hold to the operating system."""
    pa.default_memory_pool().release_unused()
    if _TRIM is not None:
        _TRIM(0)
