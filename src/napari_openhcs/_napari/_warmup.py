"""Pay napari's one-time costs in a background thread, not on the UI thread.

The first labels or points layer of a session makes napari import pandas (its
feature table) and skimage.color (the labels colormap), the first plate opened
imports dask.array (the lazy layers, ~0.3 s), and the first labels layer
builds vispy's dash patterns for its polygon overlay (pure NumPy, cached by vispy
for the process): together more than a second on the UI thread, in the middle of
showing a preview or a run's results. :func:`warm_up` does them in a daemon thread
as soon as a dock is created (imports are thread-safe in Python), so by the time
the first result arrives they are done.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

#: Imported by napari when the first labels/points layer is created (feature tables,
#: the labels colormap), and by the first lazy plate layer (``dask.array``).
MODULES: tuple[str, ...] = ("pandas", "skimage.color", "dask.array")

_started = threading.Event()


def _import(name: str) -> None:
    importlib.import_module(name)


def _dash_patterns() -> None:
    """Fill vispy's cache of dash patterns (every agg line, e.g. a labels layer's polygon
    overlay, builds the same 13 patterns; the first build takes ~0.1 s)."""
    from vispy.visuals.line.dash_atlas import DashAtlas

    DashAtlas()


#: Run after the imports: one-time computations whose results napari's code caches.
CACHES: tuple[Callable[[], None], ...] = (_dash_patterns,)


def warm_up(modules: tuple[str, ...] | None = None) -> threading.Thread | None:
    """Import ``modules`` (default :data:`MODULES`, then fill :data:`CACHES`) in a daemon
    thread, once per process.

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
        if modules is None:
            for fill in CACHES:
                try:
                    fill()
                except Exception:  # another vispy: no warm-up, nothing else changes
                    logger.debug("warm-up %s failed", fill.__name__, exc_info=True)

    thread = threading.Thread(target=run, name="napari-openhcs-warm-up", daemon=True)
    thread.start()
    return thread
