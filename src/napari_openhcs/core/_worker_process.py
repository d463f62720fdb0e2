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
import sys
from functools import cache
from typing import Any

logger = logging.getLogger(__name__)

#: glibc ``mallopt`` parameter: the largest number of malloc arenas.
_M_ARENA_MAX = -8


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


def trim_heap() -> None:
    """Give free heap memory back to the system (glibc ``malloc_trim``; else nothing)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def release_free_memory() -> None:
    """Collect garbage, then :func:`trim_heap`."""
    gc.collect()
    trim_heap()
