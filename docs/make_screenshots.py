"""Regenerate the widget screenshots in ``docs/images/`` from the real docks.

Run it under a display (on a headless Linux machine: ``xvfb-run -a python docs/make_screenshots.py``).
It opens the synthetic sample plate, grabs napari's *Choose reader* dialog for it,
opens every dock from the Plugins menu (napari's own menu actions), builds a small
pipeline, previews a well, runs the plate and grabs every dock with Qt's ``QWidget.grab()``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

IMAGES = Path(__file__).resolve().parent / "images"


def spin_until(condition: Any, timeout_s: float = 300.0) -> None:
    """Process Qt events until ``condition()`` is true."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the GUI did not reach the expected state in time")
        QApplication.processEvents()
        time.sleep(0.01)


def save(widget: Any, name: str, out: Path, dock: Any = None, size: tuple[int, int] | None = None) -> Path:
    """Grab ``widget`` and save it as ``<out>/<name>.png``.

    With ``dock`` and ``size``, the dock is floated at that size for the picture, then docked again.
    """
    from qtpy.QtWidgets import QApplication

    if dock is not None and size is not None:
        dock.setFloating(True)
        dock.resize(*size)
    for _ in range(5):
        QApplication.processEvents()
        time.sleep(0.05)
    path = out / f"{name}.png"
    ok = widget.grab().save(str(path))
    if dock is not None and size is not None:
        dock.setFloating(False)
    if not ok:
        raise OSError(f"could not write {path}")
    logging.getLogger(__name__).info("wrote %s", path)
    return path


def save_reader_dialog(path: str, readers: dict[str, str], out: Path) -> Path:
    """Grab napari's own *Choose reader* dialog, as napari shows it for a plate folder."""
    from napari._qt.dialogs.qt_reader_dialog import QtReaderDialog

    dialog = QtReaderDialog(pth=path, readers=readers, error_message="")
    dialog.show()
    try:
        return save(dialog, "reader-choice", out)
    finally:
        dialog.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=IMAGES, help="folder for the PNG files")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from napari.plugins._npe2 import get_readers
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QDockWidget

    import napari
    from napari_openhcs._napari._session import session_for
    from napari_openhcs.testing import make_synthetic_plate

    tmp = Path(tempfile.mkdtemp(prefix="openhcs-docs-"))
    plate_dir = make_synthetic_plate(tmp / "plate", spec="sample", seed=0)
    viewer = napari.Viewer(show=True)
    qt_window = viewer.window._qt_window
    qt_window.resize(1500, 950)
    save_reader_dialog(str(plate_dir), get_readers(str(plate_dir)), args.out)
    viewer.open(str(plate_dir), plugin="napari-openhcs")
    session = session_for(viewer)
    titles = {"plate-map": "Plate map", "pipeline-editor": "Pipeline editor", "preview": "Preview",
              "run-plate": "Run plate", "measurements": "Measurements"}
    menu = next(a.menu() for a in viewer.window.plugins_menu.actions()
                if a.menu() is not None and a.text().replace("&", "") == "napari-openhcs")
    actions = {a.text().replace("&", ""): a for a in menu.actions()}
    docks, dock_widgets = {}, {}
    for name, title in titles.items():
        actions[title].trigger()  # as a user picks Plugins > napari-openhcs > <title>
        widget = viewer.window.dock_widgets[f"{title} (napari-openhcs)"]
        dock = widget.parent()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parent()
        docks[name], dock_widgets[name] = widget, dock
    qt_window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock_widgets["plate-map"])
    qt_window.tabifyDockWidget(dock_widgets["preview"], dock_widgets["run-plate"])
    qt_window.tabifyDockWidget(dock_widgets["preview"], dock_widgets["measurements"])
    dock_widgets["preview"].raise_()
    qt_window.resizeDocks([dock_widgets["pipeline-editor"], dock_widgets["preview"]],
                                         [620, 300], Qt.Orientation.Vertical)

    editor, preview, run = docks["pipeline-editor"], docks["preview"], docks["run-plate"]
    for name in ("percentile_normalize", "max_projection", "count_nuclei"):
        editor.add_function(name)
    editor.browser.set_search("nuclei")
    session.select(session.plate.wells[1])
    done: list[Any] = []
    preview.preview_finished.connect(done.append)
    preview.run_button.click()
    spin_until(lambda: done)
    for layer in viewer.layers:  # show the preview, not the raw tiles under it
        layer.visible = "preview" in str(layer.metadata.get("napari_openhcs", {}).get("kind"))
    viewer.layers.selection.active = viewer.layers[-1]
    viewer.reset_view()
    editor.model.select(2)

    save(editor, "pipeline-editor", args.out, dock_widgets["pipeline-editor"], (460, 820))
    save(preview, "preview", args.out, dock_widgets["preview"], (460, 300))
    save(viewer.window._qt_window, "preview-viewer", args.out)

    finished: list[Any] = []
    run.run_finished.connect(finished.append)
    run.output_edit.setText(str(tmp / "results"))
    run.workers.setValue(2)
    run.run_button.click()
    spin_until(lambda: finished)
    for layer in list(viewer.layers):  # keep only the results: the plate view lies at the origin
        if not str(layer.metadata.get("napari_openhcs", {}).get("kind", "")).startswith("output"):
            viewer.layers.remove(layer)
    viewer.reset_view()
    plate_map = docks["plate-map"]
    save(run, "run-plate", args.out, dock_widgets["run-plate"], (460, 330))
    choices = [c for c in plate_map.color_choices() if c.endswith("total count")]
    if choices:
        plate_map.set_color_mode(choices[0])
    save(plate_map, "plate-map", args.out, dock_widgets["plate-map"], (460, 420))
    save(docks["measurements"], "measurements", args.out, dock_widgets["measurements"], (560, 360))
    save(viewer.window._qt_window, "results-viewer", args.out)
    viewer.close()


if __name__ == "__main__":
    main()
