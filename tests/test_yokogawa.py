"""Yokogawa CellVoyager (``MeasurementData.mlf`` + ``MeasurementDetail.mrf``) plates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_openhcs.microscopes import yokogawa
from napari_openhcs.microscopes.detect import PlateFormatError, detect_microscope, open_plate

CV8000 = "yokogawa_cv8000_minimal_zero_pixels"
TITLE = "CV8000-Minimal-DataSet-2C-3W-4S-FP2-stack"


# ----------------------------------------------------------------------------- real data
def test_cv8000_metadata_matches_provenance(shared_data: Path) -> None:
    assert detect_microscope(shared_data / CV8000) == "yokogawa"
    plate = open_plate(shared_data / CV8000)
    assert plate.root.name == TITLE and (plate.root / "MeasurementData.mlf").is_file()
    assert plate.name == TITLE
    assert (plate.rows, plate.columns) == (8, 12)
    assert plate.wells == ("D08", "E03", "F08")
    assert plate.sites == (1, 2, 3, 4)
    assert [c.index for c in plate.channels] == [1, 2]  # 4 declared, 2 imaged
    assert [c.name for c in plate.channels] == ["405nm BP445-45", "488nm BP525-50"]
    assert plate.z_indices == (1, 2, 3, 4) and plate.z_spacing_um == pytest.approx(3.0)
    assert plate.timepoints == (1,)
    assert plate.pixel_size_um == pytest.approx(0.325)
    assert plate.image_shape == (2000, 2000) and plate.dtype == "uint16"
    assert len(plate.records) == 96 and plate.missing == ()
    assert list(plate.records) == sorted(plate.records)
    assert not any(r.path.startswith(("SC_", "DC_")) for r in plate.records)
    assert dict(plate.metadata)["instrument"] == "CV8000"


def test_cv8000_field_positions(shared_data: Path) -> None:
    plate = open_plate(shared_data / CV8000)
    # .mlf X/Y in µm; image y points down, so y = -Y.
    assert plate.site_position_um("D08", 1) == (pytest.approx(-402.9), pytest.approx(-567.1))
    assert plate.site_position_um("D08", 4) == (pytest.approx(247.0), pytest.approx(82.8))
    assert plate.site_grid == (2, 2)
    (y1, x1), (_, x2) = plate.site_position_um("E03", 1), plate.site_position_um("E03", 2)
    (y3, _) = plate.site_position_um("E03", 3)
    field_um = 2000 * plate.pixel_size_um  # fields abut (.mlf rounds to 0.1 µm)
    assert x2 - x1 == pytest.approx(field_um, abs=0.2)
    assert y3 - y1 == pytest.approx(field_um, abs=0.2)


def test_cv8000_reads_images(shared_data: Path) -> None:
    plate = open_plate(shared_data / CV8000)
    rec = next(r for r in plate.records_for("F08") if (r.site, r.channel, r.z) == (3, 2, 4))
    assert rec.path == f"{TITLE}_F08_T0001F003L01A02Z04C02.tif"
    img = plate.read(rec)
    assert img.shape == (2000, 2000) and img.dtype == np.uint16
    assert not img.any()  # this sample's pixels are all zero by construction


# ----------------------------------------------------------------------- synthetic
_NS = 'xmlns:bts="http://www.yokogawa.co.jp/BTS/BTSSchema/1.0"'
# Acquired as a snake: F1 top-left, F2 top-right, F3 bottom-right, F4 bottom-left.
_XY = {1: (-10.0, 5.0), 2: (10.0, 5.0), 3: (10.0, -5.0), 4: (-10.0, -5.0)}


def _name(well: str, f: int, z: int, c: int, t: int = 1, a: int = 1) -> str:
    return f"Exp_{well}_T{t:04d}F{f:03d}L01A{a:02d}Z{z:02d}C{c:02d}.tif"


def _write_cv(
    folder: Path, *, h_pixels: int = 8, skip: tuple[str, ...] = (), extra: tuple[str, ...] = ()
) -> Path:
    folder.mkdir(parents=True)
    records, names = [], []
    for f in (1, 2, 3, 4):
        for z in (1, 2):
            for c in (1, 3):
                name = _name("B02", f, z, c)
                x, y = _XY[f]
                records.append(
                    f'<bts:MeasurementRecord bts:Type="IMG" bts:Column="2" bts:Row="2" '
                    f'bts:TimePoint="1" bts:FieldIndex="{f}" bts:ZIndex="{z}" '
                    f'bts:TimelineIndex="1" bts:ActionIndex="1" bts:X="{x}" bts:Y="{y}" '
                    f'bts:Z="{(z - 1) * 1.5}" bts:Ch="{c}">{name}</bts:MeasurementRecord>'
                )
                names.append(name)
    records.append(f'<bts:MeasurementRecord bts:Type="ERR" {_NS}>oops</bts:MeasurementRecord>')
    (folder / "MeasurementData.mlf").write_text(
        f'<?xml version="1.0" encoding="utf-8"?>\n<bts:MeasurementData {_NS}>\n'
        + "\n".join(records) + "\n</bts:MeasurementData>\n"
    )
    channels = "".join(
        f'<bts:MeasurementChannel bts:Ch="{c}" bts:HorizontalPixelDimension="0.65" '
        f'bts:VerticalPixelDimension="0.65" bts:HorizontalPixels="{h_pixels}" '
        f'bts:VerticalPixels="6" />' for c in (1, 2, 3)
    )
    (folder / "MeasurementDetail.mrf").write_text(
        f'<?xml version="1.0" encoding="utf-8"?>\n<bts:MeasurementDetail {_NS} '
        f'bts:Title="Exp" bts:ColumnCount="24" bts:RowCount="16" '
        f'bts:MeasurementSettingFileName="proto.mes">{channels}</bts:MeasurementDetail>\n'
    )
    (folder / "proto.mes").write_text(
        f'<?xml version="1.0"?>\n<bts:MeasurementSetting {_NS}><bts:ChannelList>'
        '<bts:Channel bts:Ch="1" bts:Target="405" bts:Acquisition="BP445/45" '
        'bts:Fluorophore="" bts:Color="#FF002FFF" />'
        '<bts:Channel bts:Ch="3" bts:Target="561" bts:Acquisition="BP600/37" '
        'bts:Fluorophore="mCherry" bts:Color="#FFFF0000" />'
        "</bts:ChannelList></bts:MeasurementSetting>\n"
    )
    for name in [*names, *extra]:
        if name in skip:
            continue
        _, _, f, _, _, z, c = yokogawa.parse_file_name(name)
        tifffile.imwrite(folder / name, np.full((6, 8), 100 * f + 10 * z + c, np.uint16))
    tifffile.imwrite(folder / "SC_BP445-45_20x_M01_CH01.tif", np.ones((6, 8), np.uint16))
    tifffile.imwrite(folder / "DC_DCAM#1_CAM3.tif", np.ones((6, 8), np.uint16))
    return folder


def test_synthetic_measurement_sites_channels_and_pixels(tmp_path: Path) -> None:
    folder = _write_cv(tmp_path / "m")
    plate = yokogawa.open_plate(tmp_path)
    assert plate.root == folder and plate.name == "Exp"
    assert (plate.rows, plate.columns) == (16, 24)
    assert plate.wells == ("B02",)
    assert [(c.index, c.name, c.color) for c in plate.channels] == [
        (1, "405nm BP445-45", "002FFF"), (3, "mCherry", "FF0000")]
    assert plate.channels[0].wavelength_nm == 445.0
    assert plate.pixel_size_um == pytest.approx(0.65) and plate.z_spacing_um == 1.5
    assert plate.image_shape == (6, 8) and plate.site_grid == (2, 2)
    assert len(plate.records) == 16
    # F4 (bottom-left) becomes site 3 and F3 (bottom-right) site 4.
    assert plate.site_position_um("B02", 3) == (pytest.approx(5.0), pytest.approx(-10.0))
    assert dict(plate.metadata)["field_to_site"] == "B02:F3->s4, B02:F4->s3"
    rec = next(r for r in plate.records if (r.site, r.z, r.channel) == (3, 2, 3))
    assert rec.path == _name("B02", 4, 2, 3)
    assert int(plate.read(rec)[0, 0]) == 100 * 4 + 10 * 2 + 3


def test_files_on_disk_are_the_truth(tmp_path: Path) -> None:
    gone, unlisted = _name("B02", 2, 1, 1), _name("C05", 1, 1, 1)
    _write_cv(tmp_path / "m", skip=(gone,), extra=(unlisted,))
    plate = yokogawa.open_plate(tmp_path / "m")
    assert plate.missing == (("B02", f"{gone} is listed in MeasurementData.mlf but not on disk"),)
    assert plate.wells == ("B02", "C05")
    assert len(plate.records) == 16
    assert plate.site_grid is None  # C05 has no position, B02 a 2 x 2 grid


def test_truncated_mlf_names_the_file(tmp_path: Path) -> None:
    folder = _write_cv(tmp_path / "m")
    mlf = folder / "MeasurementData.mlf"
    mlf.write_bytes(mlf.read_bytes()[:700])
    with pytest.raises(PlateFormatError, match=r"MeasurementData\.mlf.*malformed or truncated"):
        yokogawa.open_plate(folder)


def test_entity_declaration_is_refused(tmp_path: Path) -> None:
    folder = _write_cv(tmp_path / "m")
    mrf = folder / "MeasurementDetail.mrf"
    mrf.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>')
    with pytest.raises(PlateFormatError, match=r"MeasurementDetail\.mrf.*DOCTYPE"):
        yokogawa.open_plate(folder)


def test_absurd_declared_size_is_refused(tmp_path: Path) -> None:
    folder = _write_cv(tmp_path / "m", h_pixels=10**9)
    with pytest.raises(PlateFormatError, match=r"MeasurementDetail\.mrf.*not plausible"):
        yokogawa.open_plate(folder)


def test_file_names_and_detection(tmp_path: Path) -> None:
    assert yokogawa.parse_file_name("T_D08_T0001F003L01A02Z04C02.tif") == (
        "D08", 1, 3, 1, 2, 4, 2)
    assert yokogawa.parse_file_name("SC_BP445-45_20x v2_M01_CH01.tif") is None
    assert yokogawa.parse_file_name("DC_DCAM#1_CAM3.tif") is None
    assert not yokogawa.detect(tmp_path)
    with pytest.raises(PlateFormatError, match="planes"):
        yokogawa.open_plate(tmp_path, source="projections")


@pytest.mark.parametrize("folder", [
    "phenix_harmonyv5_jump_BR00121482", "omezarr_hcs_faimipa_converted_9987_3434",
    "imagexpress_mxp_native_timepoints_1well", "stitching_starrynight_graphpaper_tiles",
])
def test_other_formats_are_not_claimed(shared_data: Path, folder: str) -> None:
    assert not yokogawa.detect(shared_data / folder)


def test_z_spacing_is_the_protocols_step_else_the_median_of_the_stacks(tmp_path: Path) -> None:
    folder = _write_cv(tmp_path / "m")
    mlf = folder / "MeasurementData.mlf"
    # the first record at z 1.5 is plane 2 of the first stack (F1, C1)
    mlf.write_text(mlf.read_text().replace('bts:Z="1.5"', 'bts:Z="1.48"', 1))
    # the first stack says 1.48 µm, the other seven 1.5 µm; no step declared
    assert yokogawa.open_plate(tmp_path).z_spacing_um == pytest.approx(1.5)
    mes = folder / "proto.mes"
    mes.write_text(mes.read_text().replace(
        "</bts:ChannelList>", '</bts:ChannelList><bts:ActionAcquire3D bts:SliceLength="1.6" />'))
    assert yokogawa.open_plate(tmp_path).z_spacing_um == pytest.approx(1.6)  # the protocol's step
