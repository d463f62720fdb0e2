"""Add a batch of layers to a viewer over several event-loop turns, each turn short.

Every turn that changes what is shown is followed by a repaint of the window before
any timer or input is served (the repaint is a posted event, and posted events come
first), so the UI stall of that turn is its work plus the repaint. Under software
OpenGL a repaint costs 15–40 ms before anything is drawn (the window is composited
whole), the canvas adds its layers, and napari's insertion of a layer builds its
model, vispy visual and controls widget. :class:`LayerBatch` spreads that work:

- the layer object is made on one turn; the viewer's dims get the range they will
  have with it on the next (a layer that widens the world makes napari re-slice
  every layer shown); the layer is inserted on the turn after that;
- the canvas holds its repaints during those turns and draws on a turn of its own
  after each new layer (a layer's first draw builds its shader programs); the layer
  list holds its repaints until the batch ends (napari renders every row's icon from
  SVG on each repaint of the list);
- each new layer's controls widget (the layer-controls panel) is built on the turn
  after the layer instead of inside its insertion. Until then nothing can reach the
  missing widget: the panel's update on a selection waits for it, and removing the
  layer builds it first;
- the garbage collector's automatic collections pause while the batch runs, and one
  full collection comes on a turn of its own at the end: a full collection walks every
  object made since the heap was frozen (50–100 ms in a long session) and, falling
  inside an insertion, doubled that turn.

Where the viewer has no Qt window with those parts, layers are added as napari adds
them.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from qtpy.QtCore import QObject

from .._viewer import insert_layer
from .pacing import TurnQueue

logger = logging.getLogger(__name__)


def _qt_viewer(viewer: Any) -> Any:
    return getattr(getattr(viewer, "window", None), "_qt_viewer", None)


class LayerBatch(QObject):
    """Pieces of UI-thread work (adding, updating layers) run one per turn, canvas held."""

    def __init__(self, viewer: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.turns = TurnQueue(self)
        self._to_insert: list[Any] = []  # layers made, added on the next turn
        self._pending: list[Any] = []  # layers whose controls are not built yet
        self._selection: tuple[Any, ...] = ()  # the selection when the panel was held
        self._undrawn = False  # layers were added since the canvas last drew
        # what the batch holds: the canvas whose updates are off, and napari's panel
        # update as (emitter, callback); given back if the batch's owner is deleted midway
        # and the garbage collector's thresholds from before it paused the collections
        self._held: dict[str, Any] = {"canvas": None, "list": None, "panel": None, "gc": None}
        self.destroyed.connect(partial(_give_back, self._held))
        if viewer is not None:  # napari looks a layer's controls up when removing it
            viewer.layers.events.removing.connect(self._before_removal)

    @property
    def running(self) -> bool:
        """Whether pieces of a batch are still waiting."""
        return self.turns.pending > 0

    def run(self, pieces: Sequence[Callable[[], object]], then: Callable[[], object] | None = None) -> None:
        """Run ``pieces`` one per event-loop turn with the canvas held, then ``then``.

        A piece that calls :meth:`add` gets the layer object at once; the layer goes into
        the viewer two turns later, its controls on the turn after, and the canvas draws
        it on the turn after that. A batch still running is cleared first (its layers
        stay, complete).
        """
        self.clear()
        steps: list[Callable[[], object]] = [self._hold]
        for piece in pieces:
            steps += [piece, self._fit_dims, self._insert, self._build_controls, self._draw_new, self._hold]
        steps += [self._release, self._collect]
        if then is not None:
            steps.append(then)
        self.turns.put(*steps)

    def add(self, layer_data: Any) -> Any:
        """Make the layer of ``layer_data`` now; it is added to the viewer two turns later.

        Outside a batch (no turn to come) it is added at once.
        """
        from napari.layers import Layer

        data, kwargs, layer_type = layer_data
        layer = Layer.create(data, dict(kwargs), layer_type)
        self._to_insert.append(layer)
        if not self.running:
            self._insert()
            self._build_controls()
        return layer

    def clear(self) -> None:
        """Drop the pieces not yet run; finish what the batch started (layers, controls, canvas)."""
        self.turns.clear()
        self._insert()
        self._build_controls()
        self._release()
        _gc_back(self._held)

    # ---------------------------------------------------------------- pieces
    def _hold(self) -> None:
        # collections pause (a threshold of 0; dask turns gc.disable() back on) and one
        # comes at the batch's end, on a turn of its own
        if self._held["gc"] is None and gc.get_threshold()[0] > 0:
            self._held["gc"] = gc.get_threshold()
            gc.set_threshold(0)
        qt_viewer = _qt_viewer(self.viewer)
        canvas = getattr(getattr(qt_viewer, "canvas", None), "native", None)
        for key, widget in (("canvas", canvas), ("list", getattr(qt_viewer, "_layers", None))):
            if widget is None or self._held[key] is not None:
                continue
            try:
                widget.setUpdatesEnabled(False)
            except RuntimeError:  # the widget is gone (viewer closed)
                continue
            self._held[key] = widget

    def _draw_new(self) -> None:
        """Let the canvas draw the layers added since its last draw (held again next turn)."""
        if self._undrawn:
            self._undrawn = False
            self._release("canvas")

    def _release(self, *keys: str) -> None:
        for key in keys or ("list", "canvas"):
            widget, self._held[key] = self._held[key], None
            if widget is not None:
                _enable(widget)

    def _fit_dims(self) -> None:
        """Give the viewer's dims the range they will have with the layers made last.

        A layer that widens the world (the output mosaic beside the raw tiles) moves the
        dims' point, and napari re-slices every layer shown; on this turn of its own that
        work is not added to the layer's insertion.
        """
        layers, dims = self.viewer.layers, self.viewer.dims
        if not self._to_insert or not len(layers):  # nothing shown yet: nothing to re-slice
            return
        try:
            extent = layers.get_extent([*layers, *self._to_insert])
            ranges = tuple(zip(extent.world[0], extent.world[1], extent.step, strict=True))
            if len(ranges) != dims.ndim:
                dims.ndim = len(ranges)
            if tuple(map(tuple, dims.range)) != ranges:
                dims.range = ranges
        except Exception:  # another napari: the insertion sets the range, as napari does
            logger.debug("could not fit the dims before an insertion", exc_info=True)

    def _collect(self) -> None:
        """Let the garbage collector run again, after one full collection."""
        if self._held["gc"] is not None:
            gc.collect()
        _gc_back(self._held)

    def _insert(self) -> None:
        """Add the layers made on the last turn, each without its controls widget."""
        todo, self._to_insert = self._to_insert, []
        if not todo:
            return
        controls = getattr(_qt_viewer(self.viewer), "controls", None)
        build = getattr(controls, "_add", None)
        populate = getattr(controls, "_populate", None)
        layers = self.viewer.layers
        if build is None or populate is None or not hasattr(controls, "widgets"):
            for layer in todo:  # another napari: as napari adds them
                insert_layer(self.viewer, layer, select=False)
            return
        if self._held["panel"] is None:  # the panel follows the selection again once built
            layers.selection.events.changed.block(populate)
            self._held["panel"] = (layers.selection.events.changed, populate)
            self._selection = _selection(layers)
        with layers.events.inserted.blocker(build):
            for layer in todo:
                insert_layer(self.viewer, layer, select=False)
                self._pending.append(layer)
        self._undrawn = True

    def _build_controls(self) -> None:
        """Build the controls of the layers added last, then let napari's panel follow the
        selection again (a selection made meanwhile reaches it now: napari's own handlers
        run before any plugin's, so its update could only be held, not preceded)."""
        from napari.utils.events import Event

        pending, self._pending = self._pending, []
        controls = getattr(_qt_viewer(self.viewer), "controls", None)
        if controls is not None:
            for layer in pending:
                if layer in self.viewer.layers and layer not in controls.widgets:
                    try:
                        controls._add(Event("inserted", value=layer))
                    except Exception:  # another napari: its panel shows no controls for it
                        logger.exception("could not build the controls of layer %r", layer.name)
        panel, self._held["panel"] = self._held["panel"], None
        if panel is not None:
            emitter, populate = panel
            emitter.unblock(populate)
            held, self._selection = self._selection, ()
            if _selection(self.viewer.layers) != held:  # chosen meanwhile
                populate()  # the panel shows the selected layer's controls, as napari would have

    def _before_removal(self, event: Any = None) -> None:
        """napari looks a removed layer's controls up: build what is pending first."""
        if self._pending or self._held["panel"] is not None:
            self._build_controls()


def _selection(layers: Any) -> tuple[Any, ...]:
    selection = layers.selection
    return (selection.active, *sorted(map(id, selection)))


def _enable(widget: Any) -> None:
    try:
        widget.setUpdatesEnabled(True)  # repaints the widget once
    except RuntimeError:  # the widget is gone (viewer closed)
        pass


def _give_back(held: dict[str, Any], *_: Any) -> None:
    """Give back what a batch holds when its owner is deleted: napari's panel, the canvas."""
    panel, held["panel"] = held["panel"], None
    if panel is not None:
        emitter, populate = panel
        emitter.unblock(populate)
    for key in ("list", "canvas"):
        widget, held[key] = held[key], None
        if widget is not None:
            _enable(widget)
    _gc_back(held)


def _gc_back(held: dict[str, Any]) -> None:
    thresholds, held["gc"] = held["gc"], None
    if thresholds is not None:
        gc.set_threshold(*thresholds)
