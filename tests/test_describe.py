"""Describing a plate: the text of ``napari-openhcs info`` and the dict of ``info --json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from napari_openhcs.cli import main
from napari_openhcs.microscopes.describe import (
    compact_numbers,
    compact_wells,
    describe_plate,
    plate_summary,
)
from napari_openhcs.microscopes.plate import ChannelInfo, ImageRecord, Plate


def make_plate(**changes: Any) -> Plate:
    fields: dict[str, Any] = dict(
        root=Path("plates", "P1"), microscope="imagexpress", name="P1", rows=8, columns=12,
        wells=("B02", "B03", "B04", "C07"), sites=(1, 2), channels=(
            ChannelInfo(1, "DAPI", 452.0), ChannelInfo(2, "Texas Red")),
        z_indices=(1, 2, 3), timepoints=(1,), image_shape=(256, 512), dtype="uint16",
        records=(ImageRecord("B02", 1, 1, 1, 1, "a.TIF"),), pixel_size_um=1.3672,
        z_spacing_um=3.0, site_grid=(1, 2), site_positions=(("B02", 1, 19885.0, 22985.0),),
        metadata=(("objective", "40X Plan Apo Lambda"), ("channel_z", "w1: 3 planes")),
    )
    fields.update(changes)
    return Plate(**fields)


@pytest.mark.parametrize("values, text", [
    ([], ""), ([3], "3"), ([1, 2, 3, 5], "1-3, 5"), ([5, 1, 2, 2, 9, 10], "1-2, 5, 9-10")])
def test_compact_numbers(values: list[int], text: str) -> None:
    assert compact_numbers(values) == text


def test_compact_wells_orders_rows_and_collapses_runs() -> None:
    wells = ["AA01", "B03", "B02", "Z48", "B04", "C07", "AA02", "AF48"]
    assert compact_wells(wells) == "B02-B04, C07, Z48, AA01-AA02, AF48"


def test_describe_lists_every_fact() -> None:
    text = describe_plate(make_plate())
    lines = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
             for line in text.splitlines()[1:] if ":" in line}
    assert text.splitlines()[0] == "Plate P1 (imagexpress)"
    assert lines["layout"] == "8 rows x 12 columns (96-well plate)"
    assert lines["wells"] == "4 with images: B02-B04, C07"
    assert lines["sites"] == "2 per well: 1-2 (grid 1 x 2)"
    assert lines["channels"] == "2: 1 DAPI (452 nm), 2 Texas Red"
    assert lines["z-planes"] == "3: 1-3, spacing 3 µm"
    assert lines["timepoints"] == "1: 1"
    assert lines["pixel size"] == "1.3672 µm"
    assert lines["image"] == "512 x 256 px (width x height), uint16"
    assert lines["image set"] == "planes; 1 images"
    assert lines["missing"] == "none"
    assert lines["objective"] == "40X Plan Apo Lambda"


def test_describe_unknowns_and_non_standard_layout() -> None:
    text = describe_plate(make_plate(pixel_size_um=None, z_spacing_um=None, site_grid=None,
                                     rows=5, columns=5, metadata=()))
    assert "pixel size:  unknown" in text
    assert "25 wells, not a standard plate" in text
    assert "grid" not in text and "spacing" not in text and "metadata" not in text


def test_describe_summarises_many_missing_images() -> None:
    missing = tuple((f"B{c:02d}", f"site 2 missing ({c})") for c in range(1, 13))
    text = describe_plate(make_plate(missing=missing))
    assert "missing:     12 problem(s) in 12 well(s): B01-B12" in text
    assert "    B01: site 2 missing (1)" in text
    assert "... and 2 more" in text and "(11)" not in text


def test_summary_is_json_serialisable() -> None:
    plate = make_plate(missing=(("B03", "site 2 missing"),))
    summary = json.loads(json.dumps(plate_summary(plate)))
    assert summary["format"] == "imagexpress" and summary["name"] == "P1"
    assert summary["layout"] == {"rows": 8, "columns": 12, "wells": 96}
    assert summary["wells"] == ["B02", "B03", "B04", "C07"]
    assert summary["channels"][0] == {"index": 1, "name": "DAPI", "wavelength_nm": 452.0, "color": None}
    assert summary["z_indices"] == [1, 2, 3] and summary["z_spacing_um"] == 3.0
    assert summary["image_shape"] == [256, 512] and summary["dtype"] == "uint16"
    assert summary["site_grid"] == [1, 2] and summary["n_images"] == 1
    assert summary["missing"] == [{"well": "B03", "message": "site 2 missing"}]
    assert summary["site_positions"] == [{"well": "B02", "site": 1, "y_um": 19885.0, "x_um": 22985.0}]
    assert summary["metadata"]["objective"] == "40X Plan Apo Lambda"


def test_info_command_on_a_real_plate(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plate = shared_data / "imagexpress_mxp_export_zstack_9987_3434"
    assert main(["info", str(plate)]) == 0
    text = capsys.readouterr().out
    assert "Plate 9987 (imagexpress)" in text
    assert "3: 1 DAPI (452 nm), 2 FITC (520 nm), 3 Texas Red (624 nm)" in text
    assert "2: 1-2, spacing 3.02 µm" in text
    assert main(["info", str(plate), "--json", "--source", "projections"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["source"] == "projections" and summary["z_indices"] == [1]
    assert summary["metadata"]["channel_z"].startswith("w1: 2 planes + Maximum projection")
