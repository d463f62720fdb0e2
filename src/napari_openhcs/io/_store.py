"""A zarr ``LocalStore`` whose writes honour fault injection and can be stopped.

When one chunk write fails, zarr does not cancel the chunk writes already
running in its thread pool; they would go on creating files while the caller
cleans up. :meth:`GuardedLocalStore.stop_writes` refuses new writes and waits
for the running ones, so a folder removed afterwards stays removed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
from pathlib import Path

from zarr.core.buffer import Buffer
from zarr.storage import LocalStore

from . import atomic

logger = logging.getLogger(__name__)


class GuardedLocalStore(LocalStore):
    """``LocalStore`` that checks :func:`atomic.check_fault` before every write.

    Outside tests it behaves like :class:`zarr.storage.LocalStore` (whose own
    writes already go through a temporary file and a rename), except that after
    :meth:`stop_writes` every further write is refused.
    """

    def __init__(self, root: Path | str, *, read_only: bool = False) -> None:
        super().__init__(root, read_only=read_only)
        self._cond = threading.Condition()
        self._running = 0
        self._stopped = False

    async def _set(self, key: str, value: Buffer, exclusive: bool = False) -> None:
        path = os.path.join(str(self.root), key)
        with self._cond:
            if self._stopped:
                raise OSError(errno.ECANCELED, "write refused: writes to this store were stopped", path)
            self._running += 1
        try:
            atomic.check_fault(path, len(value))
            await super()._set(key, value, exclusive=exclusive)
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def stop_writes(self, timeout: float = 120.0) -> None:
        """Refuse new writes and wait (up to ``timeout`` s) for running ones to end.

        Chunk writes that zarr has queued but not started are left to fail fast
        (they are refused); they are given up to 10 s to do so.
        """
        with self._cond:
            self._stopped = True
            if not self._cond.wait_for(lambda: self._running == 0, timeout=timeout):
                logger.warning(
                    "%d writes to %s still running after %.0f s", self._running, self.root, timeout
                )
        _drain_zarr_loop(10.0)


def _drain_zarr_loop(timeout: float) -> None:
    """Wait (bounded) for the tasks on zarr's event loop, so none outlives a failed write."""
    from zarr.core.sync import sync

    async def drain() -> None:
        me = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not me]
        if others:
            await asyncio.wait(others, timeout=timeout)

    try:
        sync(drain())
    except Exception:  # never mask the error that made us stop
        logger.debug("could not drain zarr's event loop", exc_info=True)
