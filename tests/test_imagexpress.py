"""ImageXpress / MetaXpress plates: export (HTD, ``TimePoint_t/ZStep_z``) and native storage (GUIDs)."""

from __future__ import annotations

import html
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_openhcs.microscopes import imagexpress
from napari_openhcs.microscopes._htd import parse_htd_text, read_htd
from napari_openhcs.microscopes._ixm_files import parse_image_name
from napari_openhcs.microscopes.detect import PlateFormatError, detect_microscope, open_plate
from napari_openhcs.microscopes.plate import well_name

ZSTACK = "imagexpress_mxp_export_zstack_9987_3434"
MINIMAL = "imagexpress_mxp_export_minimal_9987_3420"
NATIVE = "imagexpress_mxp_native_timepoints_1well"
NATIVE_ACQ = Path("1well-3C-2S-Zmix-T", "2024-04-22", "1697")


def _keys(plate) -> list[tuple]:
    return [(r.well, r.site, r.channel, r.z, r.t) for r in plate.records]


# ----------------------------------------------------------------------------- real data
def test_export_zstack_matches_provenance(shared_data: Path) -> None:
    plate = open_plate(shared_data / ZSTACK)
    assert plate.microscope == "imagexpress" and plate.name == "9987"
    assert plate.root == shared_data / ZSTACK / "9987_Plate_3434"
    assert (plate.rows, plate.columns) == (8, 12)
    assert plate.wells == ("B02", "B03")
    assert plate.sites == (1, 2) and plate.site_grid == (1, 2)
    assert [(c.index, c.name) for c in plate.channels] == [(1, "DAPI"), (2, "FITC"), (3, "Texas Red")]
    assert [c.wavelength_nm for c in plate.channels] == [452, 520, 624]
    # files are the truth: the HTD declares ZSteps 3 and a 4th wave, the disk has 2 planes, 3 waves
    # z spacing of the whole plate: the four DAPI stacks say 3.00, 3.02, 3.04, 3.02 µm (median
    # 3.02), not the first stack's 3.00
    assert plate.z_indices == (1, 2) and plate.z_spacing_um == pytest.approx(3.02)
    assert plate.timepoints == (1,)
    assert plate.pixel_size_um == pytest.approx(1.3672)
    assert plate.image_shape == (256, 256) and plate.dtype == "uint16"
    assert plate.source == "planes" and plate.missing == ()
    meta = dict(plate.metadata)
    assert "w4 (Cy5)" in meta["declared_not_found"] and "ZStep 3" in meta["declared_not_found"]
    assert meta["channel_z"] == (
        "w1: 2 planes + Maximum projection; w2: Maximum projection only; w3: single plane"
    )
    assert meta["z_planes_per_channel"] == "w1=2, w2=1, w3=1"
    assert meta["objective"].startswith("40X Plan Apo Lambda")


def test_export_zstack_copies_are_not_counted(shared_data: Path) -> None:
    """36 files on disk: w2/w3 are copied into every ZStep folder; 16 distinct images."""
    plate = open_plate(shared_data / ZSTACK)
    keys = _keys(plate)
    assert len(keys) == len(set(keys)) == 16
    by_channel = {c: sorted((r.z, r.path.split("/")[1]) for r in plate.records
                            if (r.well, r.site, r.channel) == ("B02", 1, c)) for c in (1, 2, 3)}
    assert by_channel == {
        1: [(1, "ZStep_1"), (2, "ZStep_2")],  # real planes; ZStep_0 is the projection
        2: [(1, "ZStep_0")],  # projection only: offered once, at z=1
        3: [(1, "ZStep_1")],  # single plane (Z Step 1); its ZStep_0/ZStep_2 copies are dropped
    }


def test_export_zstack_projections(shared_data: Path) -> None:
    plate = open_plate(shared_data / ZSTACK, source="projections")
    assert plate.source == "projections" and plate.z_indices == (1,) and plate.z_spacing_um is None
    assert len(plate.records) == 12
    folders = {r.channel: r.path.split("/")[1] for r in plate.records if r.site == 1}
    assert folders == {1: "ZStep_0", 2: "ZStep_0", 3: "ZStep_1"}
    proj = plate.read(next(r for r in plate.records if r.channel == 1))
    planes = open_plate(shared_data / ZSTACK)
    stack = [planes.read(r) for r in planes.records if (r.well, r.site, r.channel) == ("B02", 1, 1)]
    assert proj.shape == (256, 256)
    assert int(proj.max()) >= max(int(p.max()) for p in stack) * 0.9  # a maximum projection


def test_export_zstack_stage_positions(shared_data: Path) -> None:
    plate = open_plate(shared_data / ZSTACK)
    assert plate.site_position_um("B02", 1) == pytest.approx((19885.0, 22985.0))
    assert plate.site_position_um("B02", 2) == pytest.approx((19885.0, 23300.0))  # 315 µm right
    assert plate.site_position_um("B03", 1) == pytest.approx((19885.0, 31984.9))


def test_export_minimal_without_sites_or_waves(shared_data: Path) -> None:
    plate = open_plate(shared_data / MINIMAL)
    assert plate.name == "9987" and plate.wells == ("B02",)
    assert plate.sites == (1,) and plate.z_indices == (1,) and plate.timepoints == (1,)
    assert [(c.index, c.name) for c in plate.channels] == [(1, "DAPI")]
    assert plate.pixel_size_um == pytest.approx(1.3672)
    assert plate.image_shape == (256, 256) and plate.site_grid == (1, 1)
    (rec,) = plate.records
    assert rec.path == "TimePoint_1/9987_B02.TIF"
    img = plate.read(rec)
    assert img.shape == (256, 256) and img.dtype == np.uint16
    assert (int(img.min()), int(img.max())) == (574, 5585) and len(np.unique(img)) == 3105


def test_native_timepoints_matches_provenance(shared_data: Path) -> None:
    plate = open_plate(shared_data / NATIVE)
    assert plate.root == shared_data / NATIVE / NATIVE_ACQ
    assert plate.name == "1well-3C-2S-Zmix-T" and plate.wells == ("C07",)
    assert plate.sites == (1, 2) and plate.site_grid == (2, 1)
    assert [(c.name, c.wavelength_nm) for c in plate.channels] == [
        ("Copy of FITC", 536), ("Copy of Cy3", 593), ("Copy of Texas Red", 624)]
    assert plate.timepoints == (1, 2) and plate.z_indices == (1,)
    assert plate.pixel_size_um == pytest.approx(13.5504)
    assert plate.image_shape == (256, 256) and plate.dtype == "uint16"
    assert len(plate.records) == 12 and plate.missing == ()
    # sites abut exactly: 256 px x 13.5504 µm = 3468.9 µm, stage y grows downwards
    p1, p2 = plate.site_position_um("C07", 1), plate.site_position_um("C07", 2)
    assert p1 is not None and p2 is not None
    (y1, x1), (y2, x2) = p1, p2
    assert x1 == x2 and y2 - y1 == pytest.approx(256 * 13.5504, abs=0.5)
    meta = dict(plate.metadata)
    assert meta["layout"] == "MetaXpress native storage"
    assert meta["channel_z"] == "w1: single plane; w2: Maximum projection only; w3: Maximum projection only"


@pytest.mark.parametrize("sub", [Path("."), Path("1well-3C-2S-Zmix-T"),
                                 Path("1well-3C-2S-Zmix-T", "2024-04-22"), NATIVE_ACQ])
def test_native_root_may_be_plate_date_or_acquisition(shared_data: Path, sub: Path) -> None:
    plate = imagexpress.open_plate(shared_data / NATIVE / sub)
    assert plate.root == shared_data / NATIVE / NATIVE_ACQ and len(plate.records) == 12


def test_native_reads_real_pixels_per_timepoint(shared_data: Path) -> None:
    plate = open_plate(shared_data / NATIVE)
    rec1, rec2 = (r for r in plate.records if (r.site, r.channel) == (1, 2))
    a, b = plate.read(rec1), plate.read(rec2)
    assert a.shape == b.shape == (256, 256) and a.any() and len(np.unique(a)) > 1000
    assert not np.array_equal(a, b)  # two real timepoints, not a copy


@pytest.mark.parametrize("name", [ZSTACK, MINIMAL, NATIVE])
def test_detects_real_imagexpress_plates(shared_data: Path, name: str) -> None:
    assert detect_microscope(shared_data / name) == "imagexpress"
    plate = open_plate(shared_data / name)
    assert pickle.loads(pickle.dumps(plate)).records == plate.records


@pytest.mark.parametrize("name", ["phenix_harmonyv5_jump_BR00121482", "yokogawa_cv8000_minimal_zero_pixels",
                                  "omezarr_hcs_bf2raw_plate_rows2", "stitching_starrynight_graphpaper_tiles"])
def test_does_not_claim_other_formats(shared_data: Path, name: str) -> None:
    assert not imagexpress.detect(shared_data / name)


# ----------------------------------------------------------------------------- file names
GUID = "B9AD8C2D-0576-48DC-86A5-C6AE4AD33802"


@pytest.mark.parametrize("name, expected", [
    ("9987_B02_s1_w2.TIF", ("9987", "B02", 1, 2, False)),
    ("9987_B02.TIF", ("9987", "B02", 1, 1, False)),
    ("My_A01_Plate-2_B02_s12_w3.TIF", ("My_A01_Plate-2", "B02", 12, 3, False)),
    (f"MyPlate_E07_s1_w1{GUID}.tif", ("MyPlate", "E07", 1, 1, False)),
    ("1well-3C-2S-Zmix-T_C07_s1_w1401562CF-BD52-4C90-A944-83185F26B372.tif",
     ("1well-3C-2S-Zmix-T", "C07", 1, 1, False)),
    (f"MyPlate_E07_s3{GUID}.tif", ("MyPlate", "E07", 3, 1, False)),
    (f"exp126-d0_C03_thumb{GUID}.tif", ("exp126-d0", "C03", 1, 1, True)),
    (f"P_AF48_s2_w4_thumb{GUID}.tif", ("P", "AF48", 2, 4, True)),
    ("P_AA01_w2.TIF", ("P", "AA01", 1, 2, False)),
])
def test_parses_image_names(name: str, expected: tuple) -> None:
    p = parse_image_name(name)
    assert p is not None and (p.plate, p.well, p.site, p.wave, p.thumbnail) == expected


@pytest.mark.parametrize("name", ["r01c01f01p01-ch1sk1fk1fl1.tiff", "T_D08_T0001F003L01A02Z04C02.tif",
                                  "9987.HTD", "SC_BP525-50_20x v2_M01_CH02.tif", "P_B99_s1.TIF", "1.tif"])
def test_rejects_other_names(name: str) -> None:
    assert parse_image_name(name) is None


# ----------------------------------------------------------------------------- synthetic trees
def _guid(n: int) -> str:
    return f"{n:08X}-0576-48DC-86A5-{n:012X}"


def write_image(path: Path, props: dict | None = None, value: int = 100,
                shape: tuple[int, int] = (8, 8)) -> Path:
    """Write a small uint16 TIFF, with MetaSeries properties when ``props`` is given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (np.arange(shape[0] * shape[1]).reshape(shape) % 7 + value).astype(np.uint16)
    desc = None
    if props is not None:
        body = "".join(f'<prop id="{k}" type="string" value="{html.escape(str(v))}"/>'
                       for k, v in props.items())
        desc = f"<MetaData>{body}</MetaData>"
    tifffile.imwrite(path, data, description=desc, software="MetaSeries", metadata=None)
    return path


def props(well: str, site: int, wave: int, *, z: float = 100.0, time: str = "20240101 10:00:00.000",
          step: int | None = 1, projection: str | None = None, x: float = 1000.0, y: float = 2000.0,
          name: str | None = None) -> dict:
    p = {"image-name": name or f"wave{wave}", "spatial-calibration-x": 0.65,
         "spatial-calibration-units": "um", "stage-position-x": x + 100 * (site - 1),
         "stage-position-y": y, "z-position": z, "acquisition-time-local": time,
         "wavelength": 400 + 100 * wave, "SiteX": site, "SiteY": 1, "stage-label": f"{well} : Site {site}"}
    if projection:
        p["Z Projection Method"] = projection
    elif step is not None:
        p["Z Step"] = step
    return p


def write_htd(path: Path, *, rows: int = 8, cols: int = 12, selected: tuple[str, ...] = ("B02",),
              waves: tuple[str, ...] = ("DAPI",), extra: str = "") -> Path:
    lines = ['"HTSInfoFile", Version 1.0', '"Description", "line one\x82\x81line two \xff"',
             f'"XWells", {cols}', f'"YWells", {rows}']
    for r in range(rows):
        flags = ["TRUE" if well_name(r, c) in selected else "FALSE" for c in range(1, cols + 1)]
        lines.append(f'"WellsSelection{r + 1}", ' + ", ".join(flags))
    lines += ['"Sites", FALSE', '"XSites", 1', '"YSites", 1', '"Waves", TRUE',
              f'"NWavelengths", {len(waves)}']
    lines += [f'"WaveName{i}", "{w}"' for i, w in enumerate(waves, 1)]
    lines += [extra, '"EndFile"'] if extra else ['"EndFile"']
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("\r\n".join(lines).encode("latin-1") + b"\r\n")
    return path


def native_zstack_plate(tmp_path: Path) -> Path:
    """``My_Plate-2/2023-02-21/1334``: w1 stack + Maximum, w2 stack + Best Focus, w3 projection
    only, w4 a single plane in ZStep_1 only; a thumbnail beside every image."""
    acq = tmp_path / "My_Plate-2" / "2023-02-21" / "1334"
    n = 0

    def put(folder: Path, site: int, wave: int, p: dict, value: int) -> None:
        nonlocal n
        n += 1
        stem = f"My_Plate-2_E07_s{site}_w{wave}"
        write_image(folder / f"{stem}{_guid(n)}.tif", p, value)
        write_image(folder / f"{stem}_thumb{_guid(1000 + n)}.tif", {"image-name": "HTSThumbHTS"},
                    shape=(64, 80))

    for site in (1, 2):
        for k in (1, 2, 3):
            for wave in (1, 2):
                put(acq / f"ZStep_{k}", site, wave, props("E07", site, wave, z=100 + 2 * k, step=k,
                                                          time=f"20230221 10:0{k}:0{wave}.000"), 10 * k)
        put(acq / "ZStep_1", site, 4, props("E07", site, 4, z=90), 5)
        put(acq, site, 1, props("E07", site, 1, projection="Maximum"), 99)
        put(acq, site, 2, props("E07", site, 2, projection="Best Focus"), 98)
        put(acq, site, 3, props("E07", site, 3, projection="Maximum"), 97)
    return acq


def test_native_zstack_planes_projections_and_thumbnails(tmp_path: Path) -> None:
    acq = native_zstack_plate(tmp_path)
    plate = open_plate(tmp_path / "My_Plate-2")
    assert plate.root == acq and plate.name == "My_Plate-2"
    assert not any("_thumb" in r.path for r in plate.records)
    zs = {c: sorted(r.z for r in plate.records if (r.site, r.channel) == (1, c)) for c in (1, 2, 3, 4)}
    assert zs == {1: [1, 2, 3], 2: [1, 2, 3], 3: [1], 4: [1]}
    assert plate.z_spacing_um == pytest.approx(2.0) and plate.image_shape == (8, 8)
    paths = {r.channel: r.path for r in plate.records if (r.site, r.z) == (1, 1)}
    assert "/" not in paths[3] and paths[4].startswith("ZStep_1/")  # projection-only, single plane
    assert dict(plate.metadata)["thumbnails_skipped"] == "20"
    assert "w2: 3 planes + Best Focus projection" in dict(plate.metadata)["channel_z"]

    proj = open_plate(acq, source="projections")
    assert {r.channel: "/" in r.path for r in proj.records if r.site == 1} == {
        1: False, 2: False, 3: False, 4: True}
    assert int(proj.read(next(r for r in proj.records if r.channel == 1)).min()) == 99


def test_projections_leave_out_stacks_without_projection(tmp_path: Path) -> None:
    acq = tmp_path / "P" / "2024-05-01" / "77"
    for k in (1, 2):
        write_image(acq / f"ZStep_{k}" / f"P_B02_s1_w1{_guid(k)}.tif", props("B02", 1, 1, step=k, z=k))
    write_image(acq / f"P_B02_s1_w2{_guid(9)}.tif", props("B02", 1, 2, projection="Maximum"))
    plate = open_plate(acq, source="projections")
    assert [c.index for c in plate.channels] == [2] and len(plate.records) == 1
    assert dict(plate.metadata)["channels_without_image_set"] == "w1"
    planes = open_plate(acq)
    assert sorted((r.channel, r.z) for r in planes.records) == [(1, 1), (1, 2), (2, 1)]


def test_projections_of_a_plate_without_any(tmp_path: Path) -> None:
    for k in (1, 2):
        write_image(tmp_path / f"ZStep_{k}" / "P_B02_w1.TIF", props("B02", 1, 1, step=k, z=k))
    with pytest.raises(PlateFormatError, match="no channel has a projection image"):
        imagexpress.open_plate(tmp_path, source="projections")


def test_export_timepoint_copies_are_dropped(tmp_path: Path) -> None:
    root = tmp_path / "Exp_1-A_Plate_77"
    write_htd(root / "Exp_1-A.HTD", selected=("B02", "B03"), waves=("DAPI", "GFP"))
    for well, x in (("B02", 0.0), ("B03", 9000.0)):
        for t in (1, 2):
            folder = root / f"TimePoint_{t}"
            write_image(folder / f"Exp_1-A_{well}_w1.TIF", props(well, 1, 1, x=x, time=f"2024 1{t}:00"), t)
            # w2 is acquired at t=1 only; the export copies it into TimePoint_2 unchanged
            write_image(folder / f"Exp_1-A_{well}_w2.TIF", props(well, 1, 2, x=x, time="2024 10:30"), 50)
    plate = open_plate(root)
    assert plate.timepoints == (1, 2) and plate.missing == ()
    assert sorted((r.channel, r.t) for r in plate.records if r.well == "B02") == [(1, 1), (1, 2), (2, 1)]
    meta = dict(plate.metadata)
    assert meta["copied_timepoints_ignored"] == "w2: 2"
    assert meta["timepoints_per_channel"] == "w2: 1"
    assert [c.name for c in plate.channels] == ["DAPI", "GFP"]  # HTD names win over image-name


def test_export_zstep_copies_without_metadata_use_pixels(tmp_path: Path) -> None:
    root = tmp_path / "P_Plate_1"
    for k, value in ((0, 50), (1, 10), (2, 20)):
        write_image(root / "TimePoint_1" / f"ZStep_{k}" / "P_B02_s1_w1.TIF", value=value)
        write_image(root / "TimePoint_1" / f"ZStep_{k}" / "P_B02_s1_w2.TIF", value=7)  # copies
    plate = open_plate(root)
    assert sorted((r.channel, r.z, r.path.split("/")[1]) for r in plate.records) == [
        (1, 1, "ZStep_1"), (1, 2, "ZStep_2"), (2, 1, "ZStep_1")]
    assert plate.pixel_size_um is None and plate.site_positions == ()
    proj = open_plate(root, source="projections")
    assert sorted((r.channel, r.path.split("/")[1]) for r in proj.records) == [(1, "ZStep_0"), (2, "ZStep_1")]


def test_1536_layout_with_double_letter_rows(tmp_path: Path) -> None:
    root = tmp_path / "Big_Plate_9" / "TimePoint_1"
    template = write_image(tmp_path / "template.tif", props("A01", 1, 1))
    wells = [f"{r}{c:02d}" for r in ("A", "P", "AA", "AF") for c in (1, 24, 48)]
    root.mkdir(parents=True)
    for w in wells:
        (root / f"Big_{w}_s1_w1.TIF").write_bytes(template.read_bytes())
    plate = open_plate(root.parent)
    assert (plate.rows, plate.columns) == (32, 48)
    assert set(plate.wells) == set(wells) and len(plate.site_positions) == len(wells)
    assert {r.well for r in plate.records if r.well.startswith("AF")} == {"AF01", "AF24", "AF48"}


def test_full_1536_plate_opens(tmp_path: Path) -> None:
    root = tmp_path / "Full_Plate_1"
    write_htd(root / "Full.HTD", rows=32, cols=48, selected=())
    template = write_image(tmp_path / "template.tif", props("A01", 1, 1)).read_bytes()
    folder = root / "TimePoint_1"
    folder.mkdir()
    letters = [chr(65 + i) for i in range(26)] + [f"A{chr(65 + i)}" for i in range(6)]
    for r in letters:
        for c in range(1, 49):
            (folder / f"Full_{r}{c:02d}_s1_w1.TIF").write_bytes(template)
    plate = open_plate(root)
    assert (plate.rows, plate.columns) == (32, 48) and len(plate.wells) == 1536
    assert len(plate.records) == 1536 and plate.missing == ()


def _grid_export(root: Path, skip: tuple[str, int, int] | None = None) -> None:
    for well in ("B02", "B03"):
        for site in (1, 2):
            for wave in (1, 2):
                if (well, site, wave) != skip:
                    path = root / "TimePoint_1" / f"P_{well}_s{site}_w{wave}.TIF"
                    write_image(path, props(well, site, wave))


def test_missing_site_in_one_channel_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "P_Plate_2"
    write_htd(root / "P.HTD", selected=("B02", "B03", "B04"), waves=("DAPI", "FITC"))
    _grid_export(root, skip=("B03", 2, 2))
    plate = open_plate(root)
    assert plate.wells == ("B02", "B03")
    assert plate.missing_for("B02") == ()
    (msg,) = plate.missing_for("B03")
    assert "site 2, channel 2 (FITC): 1 image missing" in msg
    assert plate.missing_for("B04") == ("selected in P.HTD but no image is on disk",)


def test_unreadable_header_in_one_well_fails_only_that_well(tmp_path: Path) -> None:
    root = tmp_path / "P_Plate_3"
    _grid_export(root)
    bad = root / "TimePoint_1" / "P_B03_s2_w1.TIF"
    bad.write_bytes(b"II*\x00garbage")
    plate = open_plate(root)
    (msg,) = plate.missing_for("B03")
    assert "P_B03_s2_w1.TIF" in msg and plate.missing_for("B02") == ()


# ----------------------------------------------------------------------------- errors
def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(PlateFormatError, match="empty"):
        imagexpress.open_plate(tmp_path)


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(PlateFormatError, match="no ImageXpress images"):
        imagexpress.open_plate(tmp_path)


def test_htd_without_images_names_the_problem(tmp_path: Path) -> None:
    write_htd(tmp_path / "P.HTD")
    with pytest.raises(PlateFormatError, match="no ImageXpress image files"):
        imagexpress.open_plate(tmp_path)


def test_only_thumbnails(tmp_path: Path) -> None:
    write_image(tmp_path / "TimePoint_1" / f"P_B02_s1_w1_thumb{GUID}.tif", shape=(64, 80))
    with pytest.raises(PlateFormatError, match="only thumbnails"):
        imagexpress.open_plate(tmp_path)


@pytest.mark.parametrize("content", [b"this is not a TIFF", b"II*\x00\x08\x00\x00\x00\xff"])
def test_corrupt_tiff_header_names_the_file(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "P_B02_s1_w1.TIF").write_bytes(content)
    with pytest.raises(PlateFormatError, match="P_B02_s1_w1.TIF"):
        imagexpress.open_plate(tmp_path)


def test_truncated_tiff_names_the_file(tmp_path: Path) -> None:
    path = write_image(tmp_path / "P_B02_s1_w1.TIF", props("B02", 1, 1), shape=(64, 64))
    path.write_bytes(path.read_bytes()[: path.stat().st_size - 100])
    with pytest.raises(PlateFormatError, match=r"P_B02_s1_w1\.TIF is truncated"):
        imagexpress.open_plate(tmp_path)


def test_mixed_sizes_within_a_channel(tmp_path: Path) -> None:
    write_image(tmp_path / "P_B02_w1.TIF", props("B02", 1, 1))
    write_image(tmp_path / "P_B03_w1.TIF", props("B03", 1, 1), shape=(16, 16))
    with pytest.raises(PlateFormatError, match=r"channel w1 differ in size.*P_B02_w1.*P_B03_w1"):
        imagexpress.open_plate(tmp_path)


def test_mixed_sizes_between_channels(tmp_path: Path) -> None:
    write_image(tmp_path / "P_B02_w1.TIF", props("B02", 1, 1))
    write_image(tmp_path / "P_B02_w2.TIF", props("B02", 1, 2), shape=(16, 16))
    with pytest.raises(PlateFormatError, match="channels differ in image size"):
        imagexpress.open_plate(tmp_path)


def test_link_leading_outside_the_plate_is_refused(tmp_path: Path) -> None:
    outside = write_image(tmp_path / "elsewhere" / "secret.TIF", props("B02", 1, 1))
    root = tmp_path / "plate"
    write_image(root / "P_B02_w1.TIF", props("B02", 1, 1))
    os.symlink(outside, root / "P_B03_w1.TIF")
    with pytest.raises(PlateFormatError, match="P_B03_w1.TIF is a link that leads outside"):
        imagexpress.open_plate(root)


def test_files_of_two_plates_in_one_folder(tmp_path: Path) -> None:
    write_image(tmp_path / "One_B02_w1.TIF", props("B02", 1, 1))
    write_image(tmp_path / "Two_B02_w1.TIF", props("B02", 1, 1))
    with pytest.raises(PlateFormatError, match="mixes images of several plates"):
        imagexpress.open_plate(tmp_path)


def test_several_acquisitions_are_listed(tmp_path: Path) -> None:
    for acq in ("1001", "1002"):
        write_image(tmp_path / "P" / "2024-01-01" / acq / f"P_B02_s1_w1{GUID}.tif", props("B02", 1, 1))
    with pytest.raises(PlateFormatError, match=r"(?s)2 ImageXpress acquisitions.*1001.*1002"):
        imagexpress.open_plate(tmp_path / "P")


def test_invalid_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source"):
        imagexpress.open_plate(tmp_path, source="max")


# ----------------------------------------------------------------------------- HTD
def test_htd_with_invalid_bytes_parses(tmp_path: Path) -> None:
    path = write_htd(tmp_path / "P.HTD", rows=32, cols=48, selected=("B02", "AF48"),
                     waves=("DAPI", "Texas Red"), extra='"Sites", TRUE')
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    htd = read_htd(path)
    assert htd.layout == (32, 48)
    assert htd.wave_names() == {1: "DAPI", 2: "Texas Red"}
    assert htd.description == "line one / line two \xff"
    assert htd.flag("Sites") is False  # the first occurrence of a key wins
    assert (1, 2) in htd.selected_wells


def test_htd_must_start_as_one(tmp_path: Path) -> None:
    with pytest.raises(PlateFormatError, match="not a MetaXpress HTD"):
        parse_htd_text('"Key", 1\r\n', tmp_path / "x.HTD")


def test_unreadable_htd_falls_back_to_files(tmp_path: Path) -> None:
    (tmp_path / "P.HTD").write_bytes(b"\x00\x01 garbage")
    write_image(tmp_path / "TimePoint_1" / "P_C05_w1.TIF", props("C05", 1, 1, name="Hoechst"))
    plate = imagexpress.open_plate(tmp_path)
    assert plate.wells == ("C05",) and plate.channels[0].name == "Hoechst"
    assert (plate.rows, plate.columns) == (4, 6)  # the smallest standard plate holding C05


# ----------------------------------------------------------------------------- synthetic plates
def test_reads_the_synthetic_plate_generator_output(tmp_path: Path) -> None:
    testing = pytest.importorskip("napari_openhcs.testing")
    if not hasattr(testing, "make_synthetic_plate"):
        pytest.skip("napari_openhcs.testing.make_synthetic_plate is not available")
    root = testing.make_synthetic_plate(tmp_path, spec="tiny", seed=0)
    truth = testing.load_ground_truth(root)
    spec = truth["spec"]
    assert detect_microscope(root) == "imagexpress"
    plate = open_plate(root)
    assert plate.wells == tuple(spec["wells"]) and plate.missing == ()
    assert plate.sites == (1, 2, 3, 4) and plate.site_grid == tuple(spec["grid"])
    assert [c.name for c in plate.channels] == list(spec["channels"])
    assert plate.z_indices == tuple(range(1, spec["z_planes"] + 1))
    assert plate.z_spacing_um == pytest.approx(spec["z_step_um"])
    assert plate.pixel_size_um == pytest.approx(spec["pixel_size_um"])
    assert plate.image_shape == tuple(spec["tile_shape"]) and plate.dtype == "uint16"
    for well, info in truth["wells"].items():
        for site in info["sites"]:
            assert plate.site_position_um(well, site["site"]) == pytest.approx(
                (site["stage_y_um"], site["stage_x_um"]), abs=1e-3)
    img = plate.read(plate.records[0])
    assert img.shape == plate.image_shape and img.any()
    proj = open_plate(root, source="projections")
    assert proj.z_indices == (1,) and all("ZStep_0/" in r.path for r in proj.records)


def _copy_with_htd_line(src: Path, dst: Path, line: str) -> Path:
    import shutil

    shutil.copytree(src, dst)
    for htd in dst.rglob("*.HTD"):
        os.chmod(htd, 0o644)
        raw = htd.read_bytes()
        htd.write_bytes(raw.replace(b'"EndFile"', line.encode() + b'\r\n"EndFile"'))
    for p in dst.rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return dst


def test_metaseries_pixel_size_wins_over_the_htds(shared_data: Path, tmp_path: Path) -> None:
    plate_dir = _copy_with_htd_line(shared_data / MINIMAL, tmp_path / "plate", '"PixelSizeUM", 9.5')
    assert read_htd(next(plate_dir.rglob("9987.HTD"))).pixel_size_um == 9.5
    assert open_plate(plate_dir).pixel_size_um == pytest.approx(1.3672)


def test_htd_pixel_size_when_tiffs_carry_no_metaseries_xml(tmp_path: Path) -> None:
    acq = tmp_path / "synthetic"
    (acq / "TimePoint_1" / "ZStep_1").mkdir(parents=True)
    (acq / "synthetic.HTD").write_bytes(
        b'"HTSInfoFile", Version 1.0\r\n"XWells", 2\r\n"YWells", 1\r\n"PixelSizeUM", 0.65\r\n'
        b'"WaveName1", "W1"\r\n"EndFile"\r\n')
    for well in ("A01", "B03"):  # B03 lies outside the declared 1 x 2 layout
        for site in (1, 2):
            tifffile.imwrite(acq / "TimePoint_1" / "ZStep_1" / f"{well}_s{site:03d}_w1.tif",
                             np.full((8, 8), site, np.uint16), description='{"shape": [8, 8]}')
    plate = open_plate(tmp_path)
    assert plate.name == "synthetic" and plate.wells == ("A01", "B03") and plate.sites == (1, 2)
    assert plate.pixel_size_um == 0.65 and [c.name for c in plate.channels] == ["W1"]
    assert (plate.rows, plate.columns) == (2, 3)
    assert int(plate.read(plate.records_for("B03")[1])[0, 0]) == 2
