"""Add a batch of layers to a viewer over several event-loop turns, each turn short.

Every turn that adds a layer is followed by a repaint of the window before any
timer or input is served (the repaint is a posted event, and posted events come
first), so the UI stall of that turn is the insertion plus the repaint. Under
software OpenGL the repaint is mostly the canvas drawing every visible layer
(40–60 ms with 17 layers) and the insertion is napari building the layer's model,
vispy visual and controls widget (55–90 ms). :class:`LayerBatch` shortens both:

- the layer object is made on one turn and added to the viewer on the next;
- the canvas holds its repaints while the batch runs (the rest of the window,
  the layer list included, still paints), and draws once when it ends;
- each new layer's controls widget (the layer-controls panel) is built on the
  turn after the layer instead of inside its insertion. Until then nothing can
  reach the missing widget: the panel's update on a selection waits for it, and
  removing the layer builds it first.

Where the viewer has no Qt window with those parts, layers are added as napari adds
them.
"""

from __future__ import annotations

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
        self._held: Any = None  # the canvas widget whose updates are off
        self._to_insert: list[Any] = []  # layers made, added on the next turn
        self._pending: list[Any] = []  # layers whose controls are not built yet
        self._guarded = False
        self._populate: Callable[[], None] | None = None  # napari's panel update, held
        self._selection: tuple[Any, ...] = ()  # the selection when it was held
        self._undo: dict[str, Any] = {"canvas": None, "unblock": None}  # for a dock deleted mid-batch
        self._on_destroyed: Callable[..., None] | None = None

    @property
    def running(self) -> bool:
        """Whether pieces of a batch are still waiting."""
        return self.turns.pending > 0

    def run(self, pieces: Sequence[Callable[[], object]], then: Callable[[], object] | None = None) -> None:
        """Run ``pieces`` one per event-loop turn with the canvas held, then ``then``.

        A piece that calls :meth:`add` gets the layer object at once; the layer goes into
        the viewer on the next turn and its controls on the turn after. A batch still
        running is cleared first (its layers stay, complete).
        """
        self.clear()
        steps: list[Callable[[], object]] = [self._hold]
        for piece in pieces:
            steps += [piece, self._insert, self._build_controls]
        steps.append(self._release)
        if then is not None:
            steps.append(then)
        self.turns.put(*steps)

    def add(self, layer_data: Any) -> Any:
        """Make the layer of ``layer_data`` now; it is added to the viewer on the next turn.

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

    # ---------------------------------------------------------------- pieces
    def _hold(self) -> None:
        canvas = getattr(getattr(_qt_viewer(self.viewer), "canvas", None), "native", None)
        if canvas is None or self._held is not None:
            return
        try:
            canvas.setUpdatesEnabled(False)
        except RuntimeError:  # the canvas is gone (viewer closed)
            return
        self._held = canvas
        # a dock deleted in the middle of a batch gives the canvas (and the panel) back too
        self._undo = {"canvas": canvas, "unblock": None}
        self._on_destroyed = partial(_undo, self._undo)
        self.destroyed.connect(self._on_destroyed)

    def _release(self) -> None:
        canvas, self._held = self._held, None
        if canvas is not None:
            self.destroyed.disconnect(self._on_destroyed)
            self._undo["canvas"] = None
            _enable(canvas)

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
        self._guard()
        if self._populate is None:  # the panel follows the selection again once built
            layers.selection.events.changed.block(populate)
            self._populate = populate
            self._selection = _selection(layers)
            self._undo["unblock"] = (layers.selection.events.changed, populate)
        with layers.events.inserted.blocker(build):
            for layer in todo:
                insert_layer(self.viewer, layer, select=False)
                self._pending.append(layer)

    def _build_controls(self) -> None:
        pending, self._pending = self._pending, []
        populate, self._populate = self._populate, None
        controls = getattr(_qt_viewer(self.viewer), "controls", None)
        if controls is not None:
            for layer in pending:
                if layer in self.viewer.layers and layer not in controls.widgets:
                    try:
                        controls._add(_Inserted(layer))
                    except Exception:  # another napari: its panel shows no controls for it
                        logger.exception("could not build the controls of layer %r", layer.name)
        if populate is not None:
            unblock, self._undo["unblock"] = self._undo["unblock"], None
            if unblock is not None:  # not given back already (the owner was deleted)
                self.viewer.layers.selection.events.changed.unblock(populate)
            held, self._selection = self._selection, ()
            if _selection(self.viewer.layers) != held:  # chosen meanwhile
                populate()  # the panel shows the selected layer's controls, as napari would have

    # ---------------------------------------------------------------- guards
    def _guard(self) -> None:
        """Build pending controls before napari removes a layer's (it looks them up).

        A selection made meanwhile reaches napari's panel when the controls are built:
        its update is held until then (napari's own handlers run before any plugin's,
        so it cannot be preceded).
        """
        if self._guarded:
            return
        self._guarded = True
        self.viewer.layers.events.removing.connect(self._before_removal)

    def _before_removal(self, event: Any = None) -> None:
        if self._pending or self._populate is not None:
            self._build_controls()


def _selection(layers: Any) -> tuple[Any, ...]:
    selection = layers.selection
    return (selection.active, *sorted(map(id, selection)))


def _enable(canvas: Any) -> None:
    try:
        canvas.setUpdatesEnabled(True)  # repaints the canvas once
    except RuntimeError:  # the canvas is gone (viewer closed)
        pass


def _undo(state: dict[str, Any], *_: Any) -> None:
    """Give back what a batch holds when its owner is deleted: the canvas, napari's panel."""
    unblock, state["unblock"] = state["unblock"], None
    if unblock is not None:
        emitter, populate = unblock
        emitter.unblock(populate)
    canvas, state["canvas"] = state["canvas"], None
    if canvas is not None:
        _enable(canvas)


class _Inserted:
    """The part of napari's ``inserted`` event its controls container reads."""

    def __init__(self, layer: Any) -> None:
        self.value = layer
