"""Plate map dock: open a plate, pick wells and sites, see run status and values."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from qtpy.QtCore import QPoint, Qt

from napari_openhcs._napari._plate_map_model import STATUS_COLORS, value_color
from napari_openhcs._napari._qt.plate_map import PlateMapWidget
from napari_openhcs._napari._session import HCSSession, session_for

pytestmark = pytest.mark.gui


def click_well(qtbot, plate_map, well: str) -> None:
    center = plate_map.grid.well_rect(well).center()
    qtbot.mouseClick(plate_map.grid, Qt.MouseButton.LeftButton, pos=QPoint(int(center.x()), int(center.y())))


def test_sample_plate_opens_and_the_map_follows(make_napari_viewer, qtbot) -> None:
    viewer = make_napari_viewer()
    viewer.open_sample("napari-openhcs", "synthetic_plate")
    session = session_for(viewer)
    assert session.plate is not None and session.plate.microscope == "imagexpress"
    plate = session.plate
    assert len(viewer.layers) == len(plate.sites) * len(plate.channels)
    assert {ly.colormap.name for ly in viewer.layers} == {"blue", "green"}  # DAPI, FITC
    widget = PlateMapWidget(session, viewer)
    qtbot.addWidget(widget)
    assert widget.grid.model.wells == plate.wells
    assert (widget.grid.model.rows, widget.grid.model.columns) == (plate.rows, plate.columns)
    assert session.well == plate.wells[0]


def test_click_selects_a_well_and_shows_its_raw_images(hcs) -> None:
    hcs.plate_map.resize(400, 300)
    hcs.plate_map.show_raw.setChecked(True)
    click_well(hcs.qtbot, hcs.plate_map, "A02")
    assert hcs.session.well == "A02" and hcs.session.site is None
    raw = hcs.layer_names("raw")
    assert raw and all(n.startswith("A02 ") for n in raw)
    # clicking outside any plated well changes nothing
    click_well(hcs.qtbot, hcs.plate_map, "H12")
    assert hcs.session.well == "A02"


def test_site_selector(hcs) -> None:
    box = hcs.plate_map.site_box
    assert [box.itemText(i) for i in range(box.count())] == ["whole well", "site 1", "site 2", "site 3",
                                                             "site 4"]
    box.setCurrentIndex(3)
    assert hcs.session.site == 3
    hcs.session.select("A02", None)
    assert box.currentIndex() == 0


def test_status_and_value_colours(hcs) -> None:
    model = hcs.plate_map.grid.model
    hcs.session.set_status("A01", "running")
    hcs.session.set_status("A02", "failed", "step 1 'x': boom")
    assert model.color("A01") == STATUS_COLORS["running"]
    assert model.color("A02") == STATUS_COLORS["failed"]
    assert "boom" in model.tooltip("A02")
    hcs.plate_map._value_sets = {"cells: count": {"A01": 3.0, "A02": 9.0}}
    hcs.plate_map._refresh_color_choices()
    hcs.plate_map.set_color_mode("cells: count")
    assert model.mode == "value" and model.color("A01") == value_color(0.0)
    assert hcs.plate_map.legend.model.legend().gradient == (3.0, 9.0)
    hcs.plate_map.set_color_mode("run status")
    assert model.mode == "status"
    hcs.plate_map.grab()  # paints without error


@pytest.mark.parametrize(("rows", "columns"), [(16, 24), (32, 48)])
def test_large_plates_paint_and_click(qtbot, rows: int, columns: int) -> None:
    from napari_openhcs.microscopes.plate import well_name

    wells = tuple(well_name(r, c) for r in range(rows) for c in range(1, columns + 1))
    plate = SimpleNamespace(rows=rows, columns=columns, wells=wells, sites=(1,), name="big",
                            microscope="imagexpress")
    session = HCSSession()
    widget = PlateMapWidget(session)
    qtbot.addWidget(widget)
    widget.resize(700, 500)
    session.plate = plate
    session.status = {w: "pending" for w in wells}
    widget._on_plate(plate)
    widget.grab()
    last = wells[-1]
    click_well(qtbot, widget, last)
    assert session.well == last
