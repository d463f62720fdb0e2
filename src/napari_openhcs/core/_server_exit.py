"""Imported only by the worker fork server (the first module it preloads): a quick exit.

The server ends when the process that started it ends. A normal interpreter
shutdown there tears down every module it preloaded (NumPy, SciPy, Zarr, ~0.1 s),
and a caller that reads the output of the whole process group (a shell pipe, a
``subprocess`` with ``stdout=PIPE``) waits for it. The server holds no data of
its own, so it runs multiprocessing's exit hooks and its streams' flush, then ends
at once. Forked workers never run this: they end through ``os._exit``.
"""

from __future__ import annotations

import atexit
import os
import sys


def _exit_at_once() -> None:  # pragma: no cover - runs in the fork server at its exit
    try:
        from multiprocessing import util

        util._exit_function()
    except Exception:
        return  # leave the normal shutdown to finish the job
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(0)


atexit.register(_exit_at_once)
