"""The UI thread answers between the layers a preview or a run adds (one layer per event-loop turn).

Timing targets live in ``benchmarks/bench_ui.py``; these tests check the mechanism: a
heartbeat timer on the UI thread gets a tick between every two layers added, the
viewer ends as napari leaves it after adding layers one by one (the last one
selected), and the one-time costs are paid before the layers arrive.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine_steps import max_project, normalize

pytestmark = pytest.mark.gui

PLUGIN = "napari-openhcs"


class Heartbeat:
    """A 1 ms timer on the UI thread; ``at_insert`` is its tick count when each layer arrived."""

    def __init__(self, viewer) -> None:
        from qtpy.QtCore import Qt, QTimer

        self.ticks = 0
        self.at_insert: list[tuple[str, int]] = []
        self.canvas = viewer.window._qt_viewer.canvas.native
        self.canvas_live: list[bool] = []  # whether the canvas repainted when each layer arrived
        self.layer_list = viewer.window._qt_viewer.layers
        self.list_live: list[bool] = []  # and the layer list
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(1)
        self.timer.timeout.connect(self._tick)
        viewer.layers.events.inserted.connect(self._inserted)
        self.timer.start()

    def _tick(self) -> None:
        self.ticks += 1

    def _inserted(self, event) -> None:
        self.at_insert.append((event.value.name, self.ticks))
        self.canvas_live.append(self.canvas.updatesEnabled())
        self.list_live.append(self.layer_list.updatesEnabled())

    def stop(self) -> None:
        self.timer.stop()

    def answered_between_layers(self) -> bool:
        counts = [n for _, n in self.at_insert]
        return all(b > a for a, b in zip(counts, counts[1:], strict=False))


def test_preview_layers_arrive_one_per_turn_and_the_last_is_selected(hcs) -> None:
    from napari_openhcs import FunctionStep

    pipeline = hcs.session.pipeline
    pipeline.add(FunctionStep(func=(normalize, {"low": 1.0, "high": 99.0}), name="normalize"))
    pipeline.add(FunctionStep(func=max_project, name="max z", variable_components=["z_index"]))
    beat = Heartbeat(hcs.viewer)
    try:
        hcs.preview.run_button.click()
        preview = hcs.wait_preview()
    finally:
        beat.stop()
    assert preview is not None and preview.error is None
    names = hcs.layer_names("preview")
    assert [n for n, _ in beat.at_insert] == names and len(names) == 4
    assert beat.answered_between_layers(), beat.at_insert
    last = hcs.viewer.layers[names[-1]]
    assert hcs.viewer.layers.selection.active is last
    assert set(hcs.viewer.layers.selection) == {last}
    assert_held_at_insertion_with_controls(hcs, beat, names)


def assert_held_at_insertion_with_controls(hcs, beat: Heartbeat, names: list[str]) -> None:
    """The canvas held its repaints while each layer was inserted (it draws on a turn of
    its own), the layer list until the batch ended, and both repaint now; every new layer
    has its controls panel, which napari shows when the layer is selected."""
    qt = hcs.viewer.window._qt_viewer
    assert beat.canvas_live == [False] * len(names)
    assert beat.list_live == [False] * len(names)
    assert qt.canvas.native.updatesEnabled() and qt.layers.updatesEnabled()
    for name in names:
        layer = hcs.viewer.layers[name]
        assert layer in qt.controls.widgets
        hcs.viewer.layers.selection.active = layer
        assert qt.controls.currentWidget() is qt.controls.widgets[layer]


def test_result_layers_arrive_one_per_turn_and_the_last_is_selected(hcs, tmp_path: Path) -> None:
    from napari_openhcs import FunctionStep

    hcs.session.pipeline.add(FunctionStep(func=max_project, name="max z", variable_components=["z_index"]))
    hcs.run.output_edit.setText(str(tmp_path / "out"))
    hcs.run.executor.setCurrentText("threads")
    hcs.run.wells_edit.setText("A01")
    beat = Heartbeat(hcs.viewer)
    try:
        with hcs.qtbot.waitSignal(hcs.run.run_finished, timeout=120000) as blocker:
            hcs.run.run_button.click()
    finally:
        beat.stop()
    assert {w: r.status for w, r in blocker.args[0].items()} == {"A01": "done"}
    added = [n for n, _ in beat.at_insert]
    assert added == hcs.layer_names("output") + hcs.layer_names("output-wells") and len(added) >= 3
    assert beat.answered_between_layers(), beat.at_insert
    assert hcs.viewer.layers.selection.active is hcs.viewer.layers[added[-1]]
    assert_held_at_insertion_with_controls(hcs, beat, added)


def test_the_run_dock_renders_well_name_glyphs_before_results_need_them(make_napari_viewer, qtbot) -> None:
    from napari_openhcs._napari._qt.prewarm import WELL_GLYPHS, canvas_font

    viewer = make_napari_viewer()
    font = canvas_font(viewer)
    assert font is not None
    viewer.window.add_plugin_dock_widget(PLUGIN, "Run plate")
    qtbot.waitUntil(lambda: set(WELL_GLYPHS) <= set(font._glyphs), timeout=20000)
    known = set(font._glyphs)
    viewer.add_points(np.array([[0.0, 0.0], [8.0, 8.0]]), features={"well": ["A01", "P24"]},
                      text={"string": "{well}", "size": 10})
    viewer.window._qt_viewer.canvas._scene_canvas.render()  # the layer's first draw
    assert set(font._glyphs) == known  # no glyph rendered in the draw


def test_turn_queue_runs_one_piece_per_turn_in_order_and_clears(qtbot) -> None:
    from qtpy.QtWidgets import QApplication

    from napari_openhcs._napari._qt.pacing import TurnQueue

    turns = TurnQueue()
    ran: list[int] = []
    turns.put(*(lambda i=i: ran.append(i) for i in range(3)))
    assert ran == [] and turns.pending == 3  # nothing runs before the event loop does
    qtbot.waitUntil(lambda: ran == [0, 1, 2], timeout=5000)
    turns.put(lambda: ran.append(3), lambda: ran.append(4))
    turns.clear()
    for _ in range(5):
        QApplication.processEvents()
    assert ran == [0, 1, 2] and turns.pending == 0


def test_a_piece_runs_after_the_repaint_the_piece_before_asked_for(qtbot) -> None:
    """A timer waiting behind a long repaint ticks before the next piece runs."""
    import time

    from qtpy.QtCore import Qt, QTimer
    from qtpy.QtWidgets import QWidget

    from napari_openhcs._napari._qt.pacing import TurnQueue

    class Slow(QWidget):
        def paintEvent(self, event) -> None:  # noqa: N802 (Qt's)
            time.sleep(0.03)

    widget = Slow()
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    turns = TurnQueue()
    ticks: list[int] = [0]
    seen: list[int] = []
    heartbeat = QTimer()
    heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
    heartbeat.setInterval(10)

    def tick() -> None:
        ticks[0] += 1
        if ticks[0] == 1:  # just after a tick: the next one is due while the repaint runs
            turns.put(lambda: (seen.append(ticks[0]), widget.update()), lambda: seen.append(ticks[0]))

    heartbeat.timeout.connect(tick)
    heartbeat.start()
    try:
        qtbot.waitUntil(lambda: len(seen) == 2, timeout=5000)
    finally:
        heartbeat.stop()
    assert seen[1] > seen[0], seen  # the tick came between the repaint and the next piece


def test_a_batch_pauses_the_garbage_collector_and_collects_on_a_turn_of_its_own(hcs) -> None:
    import gc

    before = gc.get_threshold()
    collections: list[tuple[int, bool]] = []  # (generation, whether a layer was inserting)
    inserting = [False]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            collections.append((info["generation"], inserting[0]))

    seen: list[int] = []
    batch, added, stop = _batch(hcs, lambda layer, c: seen.append(gc.get_threshold()[0]),
                                lambda layer, c: seen.append(gc.get_threshold()[0]))
    hcs.viewer.layers.events.inserting.connect(lambda e: inserting.__setitem__(0, True))
    hcs.viewer.layers.events.inserted.connect(lambda e: inserting.__setitem__(0, False))
    gc.callbacks.append(on_gc)
    try:
        hcs.qtbot.waitUntil(lambda: not batch.running, timeout=5000)
    finally:
        gc.callbacks.remove(on_gc)
        stop()
    assert seen == [0, 0]  # no automatic collection while the layers arrived
    assert gc.get_threshold() == before
    assert (2, False) in collections  # one full collection, outside any insertion
    assert all(not during for _, during in collections)


def test_a_layer_that_widens_the_world_gets_the_dims_range_a_turn_before_it_arrives(hcs) -> None:
    from napari_openhcs._napari._layers import META_KEY

    viewer = hcs.viewer
    viewer.add_image(np.zeros((8, 8), np.float32), name="near")
    batch = hcs.preview._batch
    ranges: list[tuple[bool, tuple]] = []  # (whether the new layer was in, the range set)
    viewer.dims.events.range.connect(
        lambda e: ranges.append(("far" in viewer.layers, tuple(map(tuple, viewer.dims.range)))))
    far = (np.zeros((8, 8), np.float32), {"name": "far", "translate": (1e5, 1e5),
                                          "metadata": {META_KEY: {"kind": "test"}}}, "image")
    batch.run([lambda: batch.add(far)])
    hcs.qtbot.waitUntil(lambda: not batch.running, timeout=5000)
    assert ranges and not ranges[0][0]  # the range was set before the layer went in
    assert all(not inside for inside, _ in ranges), ranges  # and its insertion changed nothing
    assert viewer.dims.range[-1][1] >= 1e5


def test_the_warm_up_freezes_the_heap_and_removing_a_layer_open_then_thaws_it(make_napari_viewer,
                                                                           monkeypatch) -> None:
    import gc

    from napari_openhcs._napari import _warmup
    from napari_openhcs._napari._session import session_for

    assert _warmup.CACHES[-1] is _warmup._freeze_heap  # after the imports and caches
    viewer = make_napari_viewer()
    session_for(viewer)  # what a dock does when it opens
    layer = viewer.add_image(np.zeros((8, 8), np.uint8), name="open before the freeze")
    later = None
    try:
        monkeypatch.setenv(_warmup.FREEZE_ENV, "0")
        _warmup._freeze_heap()
        assert gc.get_freeze_count() == 0  # turned off
        monkeypatch.setenv(_warmup.FREEZE_ENV, "1")
        _warmup._freeze_heap()
        assert gc.get_freeze_count() > 0  # what was tracked is out of the collector's reach
        later = viewer.add_image(np.zeros((8, 8), np.uint8), name="made after")
        viewer.layers.remove(later)  # not frozen: nothing to thaw
        assert gc.get_freeze_count() > 0
        viewer.layers.remove(layer)  # frozen with the heap: thawed, so it can be freed
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
        _warmup._frozen_layers.clear()


def _batch(hcs, *after_insert):
    """Run a batch through the Preview dock's layer batch that adds one small layer per
    piece; as each layer arrives, ``after_insert[i](layer, controls)`` is posted, so it runs
    before the batch's next turn (as a click already waiting would)."""
    from qtpy.QtCore import QTimer

    from napari_openhcs._napari._layers import META_KEY

    batch = hcs.preview._batch
    controls = hcs.viewer.window._qt_viewer.controls
    added: list = []

    def on_inserted(event) -> None:
        layer = event.value
        if layer.name.startswith("batch "):
            added.append((layer, layer in controls.widgets))
            then = after_insert[int(layer.name.split()[1])]
            QTimer.singleShot(0, lambda: then(layer, controls))

    hcs.viewer.layers.events.inserted.connect(on_inserted)
    batch.run([lambda i=i: batch.add((np.zeros((8, 8), np.float32),
                                      {"name": f"batch {i}", "metadata": {META_KEY: {"kind": "test"}}},
                                      "image")) for i in range(len(after_insert))])
    return batch, added, lambda: hcs.viewer.layers.events.inserted.disconnect(on_inserted)


def test_a_layer_selected_or_removed_before_its_controls_exist_gets_them_first(hcs) -> None:
    seen: list = []
    before: list = []  # whether the layer still had no controls when the action ran

    def select(layer, controls) -> None:  # as a click in the layer list would
        before.append(layer not in controls.widgets)
        hcs.viewer.layers.selection.active = layer  # napari's panel waits for the controls

    def remove(layer, controls) -> None:
        before.append(layer not in controls.widgets)
        hcs.viewer.layers.remove(layer)  # napari removes its controls: they must exist
        seen.append(layer not in controls.widgets)

    batch, added, stop = _batch(hcs, select, remove)
    hcs.qtbot.waitUntil(lambda: not batch.running, timeout=5000)
    assert [had for _, had in added] == [False, False]  # controls come a turn after the layer
    assert before == [True, True]  # the actions ran before the controls were built
    assert seen == [True]
    first = added[0][0]
    controls = hcs.viewer.window._qt_viewer.controls
    assert hcs.viewer.layers.selection.active is first
    assert controls.currentWidget() is controls.widgets[first]  # the panel shows the selection
    hcs.viewer.layers.selection.active = hcs.viewer.layers[0]  # and follows it again
    assert controls.currentWidget() is controls.widgets[hcs.viewer.layers[0]]
    assert hcs.viewer.window._qt_viewer.canvas.native.updatesEnabled()
    stop()


def test_closing_the_dock_during_a_batch_gives_the_canvas_back(hcs) -> None:
    qt = hcs.viewer.window._qt_viewer
    held: list[bool] = []
    canvas = qt.canvas.native
    batch, added, stop = _batch(hcs, lambda layer, c: held.append(not canvas.updatesEnabled()),
                          lambda layer, c: None, lambda layer, c: None)
    hcs.qtbot.waitUntil(lambda: bool(held), timeout=5000)
    assert held == [True]  # the canvas holds its repaints while the batch runs
    hcs.preview.close()
    assert qt.canvas.native.updatesEnabled() and qt.layers.updatesEnabled()
    assert all(layer in qt.controls.widgets for layer, _ in added)
    assert not batch.running
    stop()


def test_a_batch_deleted_midway_gives_the_canvas_and_the_controls_panel_back(hcs) -> None:
    from qtpy.QtWidgets import QApplication

    from napari_openhcs._napari._layers import META_KEY
    from napari_openhcs._napari._qt.layer_batch import LayerBatch

    qt = hcs.viewer.window._qt_viewer
    batch = LayerBatch(hcs.viewer)
    at_insert: list = []

    def on_inserted(event) -> None:  # the batch's owner goes away before the controls' turn
        if event.value.name == "midway":
            at_insert.append((qt.canvas.native.updatesEnabled(), event.value in qt.controls.widgets))
            batch.deleteLater()

    hcs.viewer.layers.events.inserted.connect(on_inserted)
    batch.run([lambda: batch.add((np.zeros((8, 8), np.float32),
                                  {"name": "midway", "metadata": {META_KEY: {"kind": "test"}}}, "image")),
               lambda: None])
    hcs.qtbot.waitUntil(lambda: bool(at_insert), timeout=5000)
    hcs.qtbot.waitUntil(qt.canvas.native.updatesEnabled, timeout=5000)  # given back
    assert qt.layers.updatesEnabled()
    hcs.viewer.layers.events.inserted.disconnect(on_inserted)
    assert at_insert == [(False, False)]  # held, no panel yet, when it was cut
    QApplication.processEvents()
    other = hcs.viewer.add_image(np.zeros((8, 8), np.float32), name="after")
    hcs.viewer.layers.selection.active = other
    assert qt.controls.currentWidget() is qt.controls.widgets[other]  # the panel follows again
    import gc

    assert gc.get_threshold()[0] > 0  # the collector runs again
