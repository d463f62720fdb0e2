"""Pay napari's one-time costs in a background thread, not on the UI thread.

The first labels or points layer of a session makes napari import pandas (its
feature table) and skimage.color (the labels colormap), the first plate opened
imports dask.array (the lazy layers, ~0.3 s), and the first labels layer
builds vispy's dash patterns for its polygon overlay (pure NumPy, cached by vispy
for the process): together more than a second on the UI thread, in the middle of
showing a preview or a run's results. :func:`warm_up` does them in a daemon thread
as soon as a dock is created (imports are thread-safe in Python), so by the time
the first result arrives they are done.

Last, it freezes the heap built so far (``gc.freeze()``):
napari, Qt and vispy leave some 300,000 long-lived objects that every full garbage
collection walked again, a 200 ms stall whenever one fell while layers were added.
Frozen objects are left out of the collections; they are the modules, classes and
widgets that live as long as the napari process. Layers already open then are
frozen too: removing one of them thaws the heap (:func:`thaw_for`), so that its
memory is reclaimed. ``NAPARI_OPENHCS_GC_FREEZE=0`` turns the freeze off.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

#: Imported by napari when the first labels/points layer is created (feature tables,
#: the labels colormap), and by the first lazy plate layer (``dask.array``).
MODULES: tuple[str, ...] = ("pandas", "skimage.color", "dask.array")

#: Name of the warm-up thread (the UI benchmark waits for it).
THREAD_NAME = "napari-openhcs-warm-up"

_started = threading.Event()


def _import(name: str) -> None:
    importlib.import_module(name)


def _dash_patterns() -> None:
    """Fill vispy's cache of dash patterns (every agg line, e.g. a labels layer's polygon
    overlay, builds the same 13 patterns; the first build takes ~0.1 s)."""
    from vispy.visuals.line.dash_atlas import DashAtlas

    DashAtlas()


#: Set to ``0`` to keep the heap unfrozen (every object stays collectable, at the cost
#: of the full collections' stalls).
FREEZE_ENV = "NAPARI_OPENHCS_GC_FREEZE"

#: The viewers' layers alive when the heap was frozen: removing one thaws it.
_frozen_layers: weakref.WeakSet[Any] = weakref.WeakSet()


def _freeze_heap() -> None:
    """Move every object tracked so far out of the garbage collector's reach.

    Full collections then walk only what was made after (the layers, the results),
    not the long-lived heap of the napari process. Not done when the environment
    variable :data:`FREEZE_ENV` is ``0``.
    """
    if os.environ.get(FREEZE_ENV, "1").strip() == "0":
        return
    from ._session import _SESSIONS

    for viewer in list(_SESSIONS.keys()):
        _frozen_layers.update(list(viewer.layers))
    gc.freeze()


def thaw_for(layer: Any) -> None:
    """Give the heap back to the collector if ``layer`` was alive when it was frozen.

    A removed layer is freed by the collector (its data with it) only if it is not
    frozen; the full collections walk the whole heap again from then on.
    """
    if layer in _frozen_layers:
        _frozen_layers.clear()
        gc.unfreeze()


#: Run after the imports: one-time computations whose results napari's code caches,
#: then the heap freeze (last, so that it holds what the imports made).
CACHES: tuple[Callable[[], None], ...] = (_dash_patterns, _freeze_heap)


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

    thread = threading.Thread(target=run, name=THREAD_NAME, daemon=True)
    thread.start()
    return thread
