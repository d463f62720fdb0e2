"""Memory housekeeping of a process that runs wells: one malloc arena, freeing memory.

A worker runs one well after another. With glibc's defaults, the memory a well's
arrays occupied is not given back to the system when they are freed: each thread
that allocates (the Zarr writer compresses chunks in a thread pool) gets its own
malloc arena, and freed blocks stay in the arenas, so a worker's resident size
creeps up well after well. A worker therefore uses a single arena, returns free
heap memory after each step that consumed its input (``malloc_trim``, called by
the well runner) and collects garbage after each well.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import sys
from functools import cache
from typing import Any

logger = logging.getLogger(__name__)

#: glibc ``mallopt`` parameters: the largest number of malloc arenas; the trim and
#: mmap thresholds.
_M_ARENA_MAX = -8
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Environment variables that fix glibc's thresholds (Dask's nanny sets the first, 64 KiB).
_THRESHOLD_VARIABLES = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")
#: Thresholds that keep whole-image arrays on the heap (glibc's dynamic upper limit of
#: the mmap threshold on 64-bit, and twice that for trimming, as glibc itself does).
_ARRAY_MMAP_THRESHOLD = 32 * 1024 * 1024
_ARRAY_TRIM_THRESHOLD = 2 * _ARRAY_MMAP_THRESHOLD


@cache
def _libc() -> Any | None:
    """The C library when it is glibc (``mallopt``/``malloc_trim``), else ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018  (glibc only)
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def use_one_malloc_arena() -> None:
    """Make every thread of this process allocate from one malloc arena (glibc; else nothing)."""
    libc = _libc()
    if libc is not None and not libc.mallopt(_M_ARENA_MAX, 1):
        logger.debug("mallopt(M_ARENA_MAX, 1) failed")


def keep_arrays_on_the_heap() -> None:
    """Undo small fixed malloc thresholds inherited from the environment (glibc; else nothing).

    A process started with ``MALLOC_TRIM_THRESHOLD_`` (Dask's nanny sets 64 KiB for
    its workers) or ``MALLOC_MMAP_THRESHOLD_`` gets fixed thresholds: every array above
    128 KiB is then mapped and unmapped anew, and every page of it faulted in again
    (``compute_tile_positions`` on nine 1024² tiles: 0.38 s → 1.55 s here). This sets
    thresholds that keep image-sized arrays on the heap for reuse; the well runner
    still gives free memory back between steps (:func:`trim_heap`).
    """
    if not any(name in os.environ for name in _THRESHOLD_VARIABLES):
        return
    libc = _libc()
    if libc is None:
        return
    if not (libc.mallopt(_M_MMAP_THRESHOLD, _ARRAY_MMAP_THRESHOLD)
            and libc.mallopt(_M_TRIM_THRESHOLD, _ARRAY_TRIM_THRESHOLD)):
        logger.debug("mallopt of the mmap/trim thresholds failed")


def trim_heap() -> None:
    """Give free heap memory back to the system (glibc ``malloc_trim``; else nothing)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def release_free_memory() -> None:
    """Collect garbage, then :func:`trim_heap`."""
    gc.collect()
    trim_heap()
