"""Plate map colours, tooltips, legend and per-well values, without Qt."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_openhcs._napari._plate_map_model import (
    STATUS_COLORS,
    PlateMapModel,
    per_well_values,
    value_color,
)


@pytest.mark.parametrize(("rows", "columns"), [(8, 12), (16, 24), (32, 48)])
def test_layouts(rows: int, columns: int) -> None:
    last = f"{'AF' if rows == 32 else chr(ord('A') + rows - 1)}{columns:02d}"
    model = PlateMapModel(rows, columns, ["A01", last])
    assert model.well_at(0, 0) == "A01"
    assert model.well_at(rows - 1, columns - 1) == last
    assert model.well_at(1, 1) is None  # no images there
    assert model.well_at(rows, 0) is None
    assert model.position(last) == (rows - 1, columns - 1)


def test_status_colours_and_failed_tooltip() -> None:
    model = PlateMapModel(8, 12, ["A01", "A02", "B01"])
    model.status = {"A01": "done", "A02": "failed", "B01": "running"}
    model.errors = {"A02": "step 2 'threshold': boom"}
    assert model.color("A01") == STATUS_COLORS["done"]
    assert model.color("A02") == STATUS_COLORS["failed"]
    assert model.color("B01") == STATUS_COLORS["running"]
    assert model.color("H12") == STATUS_COLORS["absent"]
    assert "boom" in model.tooltip("A02") and "failed" in model.tooltip("A02")
    assert [s for s, _ in model.legend().swatches][:4] == ["pending", "running", "done", "failed"]


def test_value_colours_and_gradient_legend() -> None:
    model = PlateMapModel(8, 12, ["A01", "A02", "A03"])
    model.mode, model.value_name = "value", "cells: count"
    model.values = {"A01": 10.0, "A02": 30.0}
    model.status = {"A01": "done", "A02": "done", "A03": "failed"}
    assert model.color("A01") == value_color(0.0)
    assert model.color("A02") == value_color(1.0)
    assert model.color("A03") == STATUS_COLORS["failed"]  # a failure stays visible
    legend = model.legend()
    assert legend.title == "cells: count" and legend.gradient == (10.0, 30.0)
    assert "cells: count: 30" in model.tooltip("A02")


def test_per_well_values(tmp_path: Path) -> None:
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "nuclei.csv").write_text("well,label,area,kind\nA01,1,10,x\nA01,2,30,y\nB02,1,5,x\n")
    (tables / "positions.csv").write_text("tile,y\n1,2\n")  # no well column: ignored
    values = per_well_values(tables)
    assert values["nuclei: rows"] == {"A01": 2, "B02": 1}
    assert values["nuclei: mean area"] == {"A01": 20.0, "B02": 5.0}
    assert values["nuclei: total area"] == {"A01": 40.0, "B02": 5.0}
    assert "nuclei: mean kind" not in values
    assert not any(k.startswith("positions") for k in values)
    assert per_well_values(tmp_path / "none") == {}


@pytest.mark.parametrize("mode", ["status", "value"])
def test_cells_cover_the_plate_once_with_each_wells_colour(mode: str) -> None:
    """What the map paints in one pass is what ``color`` gives well by well, on a full 1536-well plate."""
    from napari_openhcs.microscopes.plate import well_name

    wells = [well_name(r, c) for r in range(32) for c in range(1, 49) if (r + c) % 5]  # some wells empty
    model = PlateMapModel(32, 48, wells)
    model.status = {w: ("done", "failed", "running")[i % 3] for i, w in enumerate(wells) if i % 4}
    model.values = {w: float(i % 17) for i, w in enumerate(wells) if i % 7}
    model.mode = mode
    painted = {pos: color for color, positions in model.cells().items() for pos in positions}
    assert len(painted) == sum(len(p) for p in model.cells().values()) == 32 * 48
    for (r, c), color in painted.items():
        well = well_name(r, c + 1)
        assert color == (model.color(well) if well in model.wells else STATUS_COLORS["absent"])
    assert len(set(painted.values())) > 3
