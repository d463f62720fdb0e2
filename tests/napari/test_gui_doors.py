"""Every door a user opens, through napari's own machinery: the Plugins menu,
``add_plugin_dock_widget``, ``open_sample`` and ``viewer.open``."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
from _ngff import LABEL_RGBA, PIXEL_UM, write_plate

from conftest import DOCKS, HCS, plugin_menu_actions

pytestmark = pytest.mark.gui

PLUGIN = "napari-openhcs"


def _unit(layer, axis: int) -> str:
    """The unit of one axis as the status bar and scale bar abbreviate it."""
    return f"{layer.units[axis]:~P}"


@pytest.mark.parametrize("name", DOCKS)
def test_every_dock_opens_with_add_plugin_dock_widget(make_napari_viewer, name: str) -> None:
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    assert dock.isVisible() or dock.parent() is not None
    assert widget.session is not None if hasattr(widget, "session") else widget.model is not None


def test_plugins_menu_lists_every_dock_and_builds_it(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    actions = plugin_menu_actions(viewer)
    assert set(DOCKS) <= set(actions)
    for name in DOCKS:
        actions[name].trigger()
    assert {f"{n} (napari-openhcs)" for n in DOCKS} <= set(viewer.window.dock_widgets)


def test_docks_share_one_session_that_outlives_the_proxies(make_napari_viewer, tiny_plate: Path) -> None:
    from napari_openhcs._napari._session import session_for

    viewer = make_napari_viewer()
    _, plate_map = viewer.window.add_plugin_dock_widget(PLUGIN, "Plate map")
    gc.collect()  # the PublicOnlyProxy napari handed the first dock is gone now
    _, run = viewer.window.add_plugin_dock_widget(PLUGIN, "Run plate")
    _, editor = viewer.window.add_plugin_dock_widget(PLUGIN, "Pipeline editor")
    assert plate_map.session is run.session is session_for(viewer)
    assert editor.model is run.session.pipeline
    assert plate_map.viewer is viewer and run.viewer is viewer  # the real viewer, not a proxy


def test_sample_opens_through_open_sample(make_napari_viewer) -> None:
    from napari_openhcs._napari._session import session_for

    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "synthetic_plate")
    assert len(viewer.layers) > 0
    assert session_for(viewer).plate is not None  # the docks follow the sample plate


def test_raw_plate_opens_with_viewer_open(make_napari_viewer, tiny_plate: Path) -> None:
    from napari_openhcs import open_plate

    viewer = make_napari_viewer()
    layers = viewer.open(str(tiny_plate), plugin=PLUGIN)
    plate = open_plate(tiny_plate)
    assert len(layers) == len(plate.sites) * len(plate.channels)
    layer = layers[0]
    assert layer.scale[-1] == pytest.approx(plate.pixel_size_um)
    assert [_unit(layer, a) for a in (-2, -1)] == ["µm", "µm"]
    if plate.z_spacing_um:
        assert _unit(layer, -3) == "µm"


def test_output_plate_opens_with_its_ngff_labels(make_napari_viewer, tmp_path: Path) -> None:
    path, pixels, mask = write_plate(tmp_path)
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin=PLUGIN)
    kinds = {ly.name: ly._type_string for ly in layers}
    assert kinds == {"hand DAPI": "image", "hand nuclei": "labels", "hand wells": "points"}
    image, labels = viewer.layers["hand DAPI"], viewer.layers["hand nuclei"]
    assert image.multiscale and labels.multiscale
    assert tuple(labels.scale) == tuple(image.scale) and labels.scale[-1] == pytest.approx(PIXEL_UM)
    assert [_unit(labels, a) for a in (-2, -1)] == ["µm", "µm"]
    assert [_unit(image, a) for a in (-2, -1)] == ["µm", "µm"]
    assert viewer.layers.extent.units is not None  # every layer agrees, so napari renders µm
    np.testing.assert_array_equal(np.asarray(labels.data[0][0, 0, :32, :32]), mask)
    np.testing.assert_array_equal(np.asarray(image.data[0][0, 0, :32, :32]), pixels)
    for value, rgba in LABEL_RGBA.items():
        np.testing.assert_allclose(labels.colormap.map(value), np.array(rgba) / 255.0, atol=1e-6)


def test_a_png_is_not_offered_to_us(make_napari_viewer, tmp_path: Path) -> None:
    import imageio.v3 as iio
    from napari.plugins._npe2 import get_readers

    png = tmp_path / "cells.png"
    iio.imwrite(png, np.zeros((8, 8), dtype=np.uint8))
    assert PLUGIN not in get_readers(str(png))
    viewer = make_napari_viewer()
    layers = viewer.open(str(png))  # opened by napari's builtins, no reader choice
    assert layers[0].data.shape == (8, 8)


def test_folder_opens_like_napari_plate_from_the_shell(make_napari_viewer, tiny_plate: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``napari PLATE`` and *File > Open Folder...* (``_qt_open`` without a plugin): napari asks
    which reader to use until the ``*/`` preference of docs/getting-started.md names ours."""
    import napari._qt.qt_viewer as qt_viewer
    from napari.settings import get_settings

    viewer = make_napari_viewer()
    asked: list[list[str]] = []
    monkeypatch.setattr(qt_viewer, "handle_gui_reading", lambda paths, *a, **k: asked.append(paths))
    plugins = get_settings().plugins
    monkeypatch.setattr(plugins, "extension2reader", {})
    viewer.window._qt_viewer._qt_open([str(tiny_plate)], stack=False)
    assert asked == [[str(tiny_plate)]] and len(viewer.layers) == 0  # the reader dialog
    monkeypatch.setattr(plugins, "extension2reader", {"*/": PLUGIN})
    viewer.window._qt_viewer._qt_open([str(tiny_plate)], stack=False)
    assert len(asked) == 1 and len(viewer.layers) > 0
    assert all(ly.metadata["napari_openhcs"]["kind"] == "raw" for ly in viewer.layers)


def test_the_user_loop_with_docks_from_the_menu(make_napari_viewer, qtbot, tiny_plate: Path,
                                                tmp_path: Path) -> None:
    """Open a plate, build a pipeline, preview, change a parameter, run the plate, see the results."""
    viewer = make_napari_viewer()
    hcs = HCS(viewer, qtbot)
    try:
        viewer.open(str(tiny_plate), plugin=PLUGIN)  # File > Open Folder with our reader
        assert hcs.session.plate is not None and hcs.plate_map.grid.model is not None
        hcs.add_function("percentile_normalize", search="normalize")
        hcs.add_function("max_projection", search="max projection")
        count = hcs.add_function("count_nuclei", search="count nuclei")
        hcs.preview.run_button.click()
        first = hcs.wait_preview(timeout=60000)
        assert first.error is None, first.error
        assert hcs.layer_names("preview")
        assert viewer.layers.extent.units is not None  # raw and preview layers agree: the scale bar says µm
        hcs.editor.form.param_widget("sigma").value = 2.5  # the preview refreshes by itself
        second = hcs.wait_preview(timeout=60000)
        assert second is not first and second.error is None
        assert hcs.session.pipeline[count].func[1]["sigma"] == 2.5
        hcs.run.output_edit.setText(str(tmp_path / "results"))
        hcs.run.executor.setCurrentText("threads")
        hcs.run.timeout.setValue(600)
        hcs.run.stall.setValue(300)
        with qtbot.waitSignal(hcs.run.run_finished, timeout=120000) as blocker:
            hcs.run.run_button.click()
        assert {r.status for r in blocker.args[0].values()} == {"done"}
        config = hcs.run.orchestrator.config  # what the dock's fields set
        assert (config.well_timeout_s, config.heartbeat_timeout_s) == (600, 300)
        outputs = [viewer.layers[n] for n in hcs.layer_names("output")]
        assert outputs and all(_unit(ly, -1) == "µm" for ly in outputs)
        assert viewer.layers.extent.units is not None
    finally:
        hcs.preview.shutdown()
        hcs.run.shutdown()


def test_the_first_dock_imports_napari_layer_dependencies_off_the_ui_thread(make_napari_viewer, qtbot,
                                                                           monkeypatch) -> None:
    import threading

    from napari_openhcs._napari import _warmup

    imported: list[tuple[str, bool]] = []
    monkeypatch.setattr(_warmup, "_started", threading.Event())  # as in a fresh napari process
    def record(name: str) -> None:
        imported.append((name, threading.current_thread() is threading.main_thread()))

    monkeypatch.setattr(_warmup, "_import", record)
    expected = [*_warmup.MODULES, *(f.__name__ for f in _warmup.CACHES)]
    monkeypatch.setattr(_warmup, "CACHES", tuple(lambda f=f: record(f.__name__) for f in _warmup.CACHES))
    viewer = make_napari_viewer()
    viewer.window.add_plugin_dock_widget(PLUGIN, "Preview")
    qtbot.waitUntil(lambda: len(imported) == len(expected), timeout=5000)
    assert imported == [(name, False) for name in expected]  # in a worker thread
    viewer.window.add_plugin_dock_widget(PLUGIN, "Run plate")
    assert len(imported) == len(expected)  # once per process
