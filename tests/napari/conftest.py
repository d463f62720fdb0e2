"""Fixtures of the napari plugin tests: small synthetic plates and a private sample cache."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from napari_openhcs.testing import make_synthetic_plate

# napari's viewer fixture fails a test whose viewer is not garbage-collected; a viewer
# alive when the docks' warm-up freezes the heap stays frozen. The freeze has its own
# test (test_gui_responsiveness), which turns it back on.
os.environ.setdefault("NAPARI_OPENHCS_GC_FREEZE", "0")

@pytest.fixture(scope="session")
def tiny_plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-well synthetic ImageXpress plate (2 × 2 sites of 64², 2 channels, 2 z)."""
    return make_synthetic_plate(tmp_path_factory.mktemp("napari-plates"), spec="tiny", seed=3)


@pytest.fixture
def plate_copy(tiny_plate: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny plate (for tests that damage it)."""
    target = tmp_path / "plate" / tiny_plate.name
    shutil.copytree(tiny_plate, target)
    return target


@pytest.fixture(autouse=True)
def _private_sample_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Generate the sample plate (and preview scratch) under the test session's temp folder."""
    monkeypatch.setenv("NAPARI_OPENHCS_CACHE", str(tmp_path_factory.getbasetemp() / "sample-cache"))


#: The docks, by their display name in the Plugins menu.
DOCKS = ("Plate map", "Pipeline editor", "Preview", "Run plate", "Measurements")


class HCS:
    """A viewer with the plugin's docks, opened as a user does: from the Plugins menu."""

    def __init__(self, viewer, qtbot) -> None:
        from napari_openhcs._napari._session import session_for

        self.viewer = viewer
        self.qtbot = qtbot
        widgets = {name: open_from_plugins_menu(viewer, name) for name in DOCKS}
        self.plate_map = widgets["Plate map"]
        self.editor = widgets["Pipeline editor"]
        self.preview = widgets["Preview"]
        self.run = widgets["Run plate"]
        self.measurements = widgets["Measurements"]
        self.session = session_for(viewer)

    def layer_names(self, kind: str | None = None) -> list[str]:
        from napari_openhcs._napari._viewer import layer_info

        return [ly.name for ly in self.viewer.layers if kind is None or layer_info(ly).get("kind") == kind]

    def add_function(self, name: str, search: str | None = None) -> int:
        """Find a function in the browser by searching, highlight it and press *Add step*."""
        browser = self.editor.browser
        browser.set_search(search or name)
        browser.select_function(name)
        before = len(self.session.pipeline)
        browser.add_button.click()
        assert len(self.session.pipeline) == before + 1
        return self.session.pipeline.selected

    def wait_preview(self, timeout: int = 30000):
        with self.qtbot.waitSignal(self.preview.preview_finished, timeout=timeout) as blocker:
            pass
        return blocker.args[0]


def plugin_menu_actions(viewer) -> dict[str, object]:
    """Return napari's own QActions of our docks in *Plugins → napari-openhcs*, by dock name."""
    from qtpy.QtWidgets import QMenu

    menu: QMenu = next(a.menu() for a in viewer.window.plugins_menu.actions()
                       if a.menu() is not None and a.text().replace("&", "") == "napari-openhcs")
    return {a.text().replace("&", ""): a for a in menu.actions() if a.text()}


def open_from_plugins_menu(viewer, name: str):
    """Trigger the Plugins menu action of dock ``name``; return the widget napari built."""
    action = plugin_menu_actions(viewer)[name]
    action.trigger()
    return viewer.window.dock_widgets[f"{name} (napari-openhcs)"]


@pytest.fixture
def hcs(make_napari_viewer, qtbot, tiny_plate: Path) -> Iterator[HCS]:
    """A viewer with every dock and the tiny plate opened from the plate map (no raw layers)."""
    viewer = make_napari_viewer()
    hcs = HCS(viewer, qtbot)
    hcs.plate_map.show_raw.setChecked(False)
    hcs.plate_map.open_plate(str(tiny_plate))
    yield hcs
    hcs.preview.shutdown()
    hcs.run.shutdown()
