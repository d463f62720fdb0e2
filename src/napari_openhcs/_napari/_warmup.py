"""Pay napari's one-time import costs in a background thread, not on the UI thread.

The first labels or points layer of a session makes napari import pandas (its
feature table) and a few more modules: about a second on the UI thread, in the
middle of showing a preview or a run's results. :func:`warm_up` imports them in a
daemon thread as soon as a dock is created (imports are thread-safe in Python), so
by the time the first result arrives they are loaded.
"""

from __future__ import annotations

import importlib
import logging
import threading

logger = logging.getLogger(__name__)

#: Imported by napari when the first labels/points layer is created (feature tables).
MODULES: tuple[str, ...] = ("pandas",)

_started = threading.Event()


def _import(name: str) -> None:
    importlib.import_module(name)


def warm_up(modules: tuple[str, ...] | None = None) -> threading.Thread | None:
    """Import ``modules`` (default :data:`MODULES`) in a daemon thread, once per process.

    Returns
    -------
    threading.Thread or None
        The thread doing the imports, or ``None`` when the warm-up already ran.
    """
    if _started.is_set():
        return None
    _started.set()
    names = MODULES if modules is None else modules

    def run() -> None:
        for name in names:
            try:
                _import(name)
            except Exception:  # a missing optional module only means no warm-up
                logger.debug("warm-up import of %s failed", name, exc_info=True)

    thread = threading.Thread(target=run, name="napari-openhcs-warm-up", daemon=True)
    thread.start()
    return thread
