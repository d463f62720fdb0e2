"""How worker processes start: from a fork server that has the engine imported.

A worker started with ``spawn`` is a fresh interpreter that imports NumPy, tifffile
and the function library (~0.2 s; SciPy and scikit-image follow when a function
first uses them) before its first well, once per worker and again for every worker
that replaces one that died. Where the platform offers it (Linux, macOS), workers are
instead forked by multiprocessing's fork server: one process, started once per
session, imports the engine (:data:`PRELOAD`) and then forks each worker in
milliseconds. Either way a worker imports the output writer's codec
(:data:`BACKGROUND_IMPORTS`) in a thread while its first well is read and processed.
The server itself is a fresh interpreter that never runs a well, so no threads, open
files, GPU or Qt state of the calling process reach a worker, and each worker is
still prepared like a spawn child (the caller's ``sys.path`` and main module).

:func:`start_worker_server` starts the server early (``PipelineOrchestrator.initialize``
calls it), so that its imports run while the caller builds and compiles the
pipeline. The workers of a Dask ``LocalCluster`` that a run starts are forked by the
same server (which preloads :data:`DASK_PRELOAD` too when such a run starts it).
``NAPARI_OPENHCS_START_METHOD=spawn`` starts every worker with ``spawn``.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import os
import sys
import threading
from typing import Any

logger = logging.getLogger(__name__)

#: Environment variable that chooses the start method (``forkserver`` or ``spawn``).
START_METHOD_ENV = "NAPARI_OPENHCS_START_METHOD"

#: Modules the fork server imports once, before forking workers.
PRELOAD = (
    "napari_openhcs.core.workers.server_exit",  # first, so that its exit hook runs after the others'
    "napari_openhcs.core.workers.local",
    "napari_openhcs.core.well_output",
    "napari_openhcs.functions._catalog",
    "tifffile",
)
#: What a worker imports in the background while its first well is read and processed:
#: only writing the well's outputs needs it (the Blosc codec, ~0.04 s to import), and
#: the server is ready that much sooner without it.
BACKGROUND_IMPORTS = ("numcodecs.blosc",)
#: What the server also imports when it forks the workers of a Dask ``LocalCluster``
#: (long-lived workers that take wells as Dask tasks, with no start-up of their own).
DASK_PRELOAD = ("distributed", *BACKGROUND_IMPORTS)


def start_method() -> str:
    """The start method for worker processes: ``forkserver`` where available, else ``spawn``."""
    chosen = os.environ.get(START_METHOD_ENV, "").strip().lower()
    available = mp.get_all_start_methods()
    if chosen:
        if chosen in ("forkserver", "spawn") and chosen in available:
            return chosen
        logger.warning("%s=%s is not usable here; using the default", START_METHOD_ENV, chosen)
    return "forkserver" if "forkserver" in available else "spawn"


def worker_context(extra_preload: tuple[str, ...] = ()) -> Any:
    """The multiprocessing context that starts worker processes (a local context).

    The global start method is never changed. For ``forkserver`` the server's
    preload list is set to :data:`PRELOAD` plus ``extra_preload`` (it applies when
    the server starts).
    """
    method = start_method()
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload([*PRELOAD, *extra_preload])
    return ctx


def import_in_background(modules: tuple[str, ...] = BACKGROUND_IMPORTS) -> threading.Thread:
    """Import ``modules`` in a daemon thread (errors are left for the import that needs them)."""

    def run() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the import in the well reports it
                logger.debug("background import of %s failed", name, exc_info=True)

    thread = threading.Thread(target=run, name="background-imports", daemon=True)
    thread.start()
    return thread


def start_worker_server(extra_preload: tuple[str, ...] = ()) -> None:
    """Start the fork server now, in the background, if workers are started by one.

    Returns at once: the server imports :data:`PRELOAD` (and ``extra_preload``, e.g.
    :data:`DASK_PRELOAD` for the workers of a Dask ``LocalCluster``) in its own process.
    A server that is already running is kept as it is.
    """
    if worker_context(extra_preload).get_start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    try:
        forkserver.ensure_running()
    except OSError as exc:  # e.g. no room for its socket; workers will try again when needed
        logger.warning("could not start the worker fork server early: %s", exc)


def exit_without_teardown() -> None:  # pragma: no cover - runs in worker and server processes
    """End this process the way a fork-started child ends: exit hooks, flushed streams, ``os._exit``.

    A full interpreter shutdown frees every module and array (0.1-0.2 s with the
    engine imported) for nothing in a process that holds no data of its own.
    Returns (and the process exits normally) if multiprocessing's exit hook is not
    available.
    """
    try:
        from multiprocessing import util

        util._exit_function()  # e.g. releases semaphores that libraries created in this process
    except Exception:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(0)
