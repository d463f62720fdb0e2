"""Fixtures of the napari plugin tests: small synthetic plates and a private sample cache."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from napari_openhcs.testing import make_synthetic_plate


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


class HCS:
    """A viewer with the plugin's docks, as a user would set it up."""

    def __init__(self, viewer, qtbot) -> None:
        from napari_openhcs._napari import _widgets
        from napari_openhcs._napari._session import session_for

        self.viewer = viewer
        self.qtbot = qtbot
        self.session = session_for(viewer)
        self.plate_map = _widgets.plate_map_widget(viewer)
        self.editor = _widgets.pipeline_editor_widget(viewer)
        self.preview = _widgets.preview_widget(viewer)
        self.run = _widgets.run_plate_widget(viewer)
        self.measurements = _widgets.measurements_widget(viewer)
        for name, widget in (("Plate map", self.plate_map), ("Pipeline", self.editor),
                             ("Preview", self.preview), ("Run plate", self.run),
                             ("Measurements", self.measurements)):
            viewer.window.add_dock_widget(widget, name=name)

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
