"""OME-Zarr HCS plates as input: NGFF 0.4 (Zarr v2) and 0.5 (Zarr v3), read lazily."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_openhcs.microscopes import omezarr
from napari_openhcs.microscopes.detect import PlateFormatError, detect_microscope, open_plate

BF2RAW = "omezarr_hcs_bf2raw_plate_rows2"
FAIM = "omezarr_hcs_faimipa_converted_9987_3434"
SPEC = "omezarr_hcs_ngff_spec_examples"


# ----------------------------------------------------------------------------- real data
def test_bf2raw_plate_matches_provenance(shared_data: Path) -> None:
    assert detect_microscope(shared_data / BF2RAW) == "omezarr"
    plate = open_plate(shared_data / BF2RAW)
    assert plate.root == shared_data / BF2RAW / "plate-rows-2.zarr"
    assert plate.reader == "zarr"
    assert plate.name == "Plate Name 0"
    assert plate.wells == ("A01", "B01")  # unpadded column "1"; OME/ is not a well
    assert plate.sites == (1,) and plate.site_grid == (1, 1)
    assert plate.z_indices == (1,) and plate.timepoints == (1,)
    assert [c.index for c in plate.channels] == [1]  # no omero block
    assert plate.image_shape == (512, 512) and plate.dtype == "uint8"
    assert plate.pixel_size_um == pytest.approx(1.0)
    assert plate.z_spacing_um is None
    assert [(r.well, r.path, r.index) for r in plate.records] == [
        ("A01", "A/1/0/0", (0, 0, 0)),
        ("B01", "B/1/0/0", (0, 0, 0)),
    ]
    meta = dict(plate.metadata)
    assert meta["bioformats2raw.layout"] == "3"
    assert meta["axes"] == "t,c,z,y,x"
    assert meta["format"] == "OME-NGFF 0.4 (Zarr v2)"


def test_bf2raw_reads_gradient_plane(shared_data: Path) -> None:
    plate = open_plate(shared_data / BF2RAW)
    img = plate.read(plate.records[0])
    assert img.shape == (512, 512) and img.dtype == np.uint8
    assert (int(img.min()), int(img.max()), len(np.unique(img))) == (0, 255, 256)


def test_faim_plate_matches_provenance(shared_data: Path) -> None:
    assert omezarr.detect(shared_data / FAIM)
    plate = open_plate(shared_data / FAIM)
    assert plate.name == "ix_9987_3434"
    assert (plate.rows, plate.columns) == (8, 12)
    assert plate.wells == ("B02", "B03")  # padded "02"
    assert plate.sites == (1,)  # faim-ipa fuses the sites of a well into one field
    assert [(c.index, c.name, c.color) for c in plate.channels] == [
        (1, "DAPI", "0051FF"),
        (2, "Maximum-Projection_FITC", "35FF00"),
        (3, "Texas Red", "FF6700"),
    ]
    assert plate.z_indices == (1, 2) and plate.timepoints == (1,)
    assert plate.z_spacing_um == pytest.approx(3.0)
    assert plate.pixel_size_um == pytest.approx(1.3672)
    assert plate.image_shape == (256, 512) and plate.dtype == "uint16"
    assert len(plate.records) == 2 * 3 * 2
    assert dict(plate.metadata)["axes"] == "c,z,y,x"


def test_faim_records_index_c_then_z(shared_data: Path) -> None:
    plate = open_plate(shared_data / FAIM)
    arr = zarr.open_array(store=str(plate.root / "B/03/0/0"), mode="r")
    for rec in plate.records_for("B03"):
        assert rec.path == "B/03/0/0" and rec.index == (rec.channel - 1, rec.z - 1)
    rec = next(r for r in plate.records_for("B03") if (r.channel, r.z) == (3, 2))
    np.testing.assert_array_equal(plate.read(rec), arr[2, 1])
    dapi = plate.read(plate.records_for("B02")[0])
    assert dapi.shape == (256, 512) and dapi.dtype == np.uint16
    assert (int(dapi.min()), int(dapi.max())) == (288, 5061)


# ------------------------------------------------------------------- spec examples
@pytest.mark.parametrize("version, zarr_format", [("0.4", 2), ("0.5", 3)])
def test_spec_plate_documents(shared_data: Path, version: str, zarr_format: int) -> None:
    base = shared_data / SPEC / f"v{version}"
    six = omezarr.parse_ngff_document(base / "plate_strict" / "plate_6wells.json")
    assert (six.kind, six.version, six.zarr_format) == ("plate", version, zarr_format)
    assert six.plate is not None
    assert six.plate.name == "test" and six.plate.field_count == 4
    assert [w.well for w in six.plate.wells] == ["A01", "A02", "A03", "B01", "B02", "B03"]
    assert [w.path for w in six.plate.wells][:2] == ["A/1", "A/2"]
    assert six.plate.acquisitions == (1, 2)
    two = omezarr.parse_ngff_document(base / "plate_strict" / "plate_2wells.json")
    assert [w.well for w in two.plate.wells] == ["C05", "D07"]
    assert len(two.plate.columns) == 12 and len(two.plate.rows) == 8
    bf = omezarr.parse_ngff_document(base / "bf2raw" / "plate.json")
    assert bf.plate.bioformats2raw_layout == 3 and bf.plate.name == "Plate Name 0"
    four = omezarr.parse_ngff_document(base / "well_strict" / "well_4fields.json")
    assert (four.kind, four.version) == ("well", version)
    assert four.well.images == (("0", 1), ("1", 1), ("2", 2), ("3", 2))
    two_f = omezarr.parse_ngff_document(base / "well_strict" / "well_2fields.json")
    assert two_f.well.images == (("0", 0), ("1", 3))


def test_metadata_only_folder_is_not_a_plate(shared_data: Path) -> None:
    folder = shared_data / SPEC
    assert not omezarr.detect(folder)
    with pytest.raises(PlateFormatError, match="no known plate layout") as err:
        detect_microscope(folder)
    assert "only NGFF metadata documents were found" in str(err.value)
    assert "v0.4/well_strict/well_4fields.json: NGFF 0.4 (Zarr v2) well: 4 fields" in str(
        err.value)
    with pytest.raises(PlateFormatError, match="no Zarr plate with image arrays") as err:
        open_plate(folder, microscope="omezarr")
    assert "v0.5/plate_strict/plate_6wells.json" in str(err.value)
    text = omezarr.describe_metadata_only(folder)
    assert text is not None and text.count("\n") == 9  # 10 documents


# ------------------------------------------------------------- our own 0.5 output
def _write_v05_plate(
    root: Path, *, unit: str = "micrometer", pixel: float = 0.65, with_arrays: bool = True
) -> Path:
    """An OME-Zarr 0.5 plate like ours: t,c,z,y,x, omero channels, 2 levels, 2 fields."""
    g = zarr.open_group(store=str(root), mode="w", zarr_format=3)
    wells = [("A", "1"), ("B", "03")]
    g.attrs["ome"] = {
        "version": "0.5",
        "plate": {
            "name": "own plate",
            "rows": [{"name": "A"}, {"name": "B"}],
            "columns": [{"name": "1"}, {"name": "03"}],
            "wells": [{"path": f"{r}/{c}", "rowIndex": i, "columnIndex": i}
                      for i, (r, c) in enumerate(wells)],
            "field_count": 2,
        },
    }
    shape = (2, 2, 3, 16, 20)
    for r, c in wells:
        well = g.require_group(r).require_group(c)
        well.attrs["ome"] = {"version": "0.5", "well": {"images": [{"path": "0"}, {"path": "1"}]}}
        for f in (0, 1):
            field = well.create_group(str(f))
            datasets = []
            for level in (0, 1):
                s = 2**level
                datasets.append({"path": str(level), "coordinateTransformations": [
                    {"type": "scale", "scale": [1.0, 1.0, 2.5, pixel * s, pixel * s]},
                    {"type": "translation", "translation": [0, 0, 0, 0, f * 20 * pixel]},
                ]})
                if with_arrays:
                    lvl_shape = (*shape[:3], shape[3] // s, shape[4] // s)
                    arr = field.create_array(str(level), shape=lvl_shape, dtype="uint16",
                                             chunks=(1, 1, 1, *lvl_shape[3:]))
                    data = np.zeros(lvl_shape, dtype=np.uint16)
                    for t, ch, z in np.ndindex(*shape[:3]):
                        data[t, ch, z] = 1000 * f + 100 * t + 10 * ch + z + 1
                    arr[...] = data
            field.attrs["ome"] = {
                "version": "0.5",
                "multiscales": [{
                    "axes": [{"name": "t", "type": "time", "unit": "second"},
                             {"name": "c", "type": "channel"},
                             {"name": "z", "type": "space", "unit": unit},
                             {"name": "y", "type": "space", "unit": unit},
                             {"name": "x", "type": "space", "unit": unit}],
                    "datasets": datasets,
                }],
                "omero": {"channels": [{"label": "DAPI", "color": "0000FF"},
                                       {"label": "GFP", "color": "00FF00"}]},
            }
    return root


def test_own_v05_plate_reads_back(tmp_path: Path) -> None:
    root = _write_v05_plate(tmp_path / "out.zarr")
    assert detect_microscope(tmp_path) == "omezarr"  # a folder holding one plate
    plate = open_plate(root)
    assert plate.root == root and plate.reader == "zarr"
    assert plate.name == "own plate"
    assert plate.wells == ("A01", "B03")
    assert plate.sites == (1, 2) and plate.timepoints == (1, 2) and plate.z_indices == (1, 2, 3)
    assert [(c.name, c.color) for c in plate.channels] == [("DAPI", "0000FF"), ("GFP", "00FF00")]
    assert plate.pixel_size_um == pytest.approx(0.65)
    assert plate.z_spacing_um == pytest.approx(2.5)
    assert plate.image_shape == (16, 20) and plate.dtype == "uint16"
    assert plate.site_grid == (1, 2)
    assert plate.site_position_um("B03", 2) == (pytest.approx(0.0), pytest.approx(13.0))
    assert len(plate.records) == 2 * 2 * 2 * 2 * 3
    assert list(plate.records) == sorted(plate.records)
    assert dict(plate.metadata)["format"] == "OME-NGFF 0.5 (Zarr v3)"
    rec = next(r for r in plate.records_for("B03")
               if (r.site, r.channel, r.z, r.t) == (2, 1, 3, 2))
    assert rec.path == "B/03/1/0" and rec.index == (1, 0, 2)
    img = plate.read(rec)
    assert img.shape == (16, 20) and img.dtype == np.uint16
    assert int(img[0, 0]) == 1000 * 1 + 100 * 1 + 10 * 0 + 2 + 1


def test_missing_field_is_reported_and_the_rest_read(tmp_path: Path) -> None:
    import shutil

    root = _write_v05_plate(tmp_path / "out.zarr")
    shutil.rmtree(root / "A" / "1" / "1")
    plate = omezarr.open_plate(root)
    assert plate.missing == (("A01", "field A/1/1 listed in the well metadata is absent"),)
    assert {r.site for r in plate.records_for("A01")} == {1}
    assert {r.site for r in plate.records_for("B03")} == {1, 2}
    assert int(plate.read(plate.records_for("A01")[-1])[0, 0]) == 100 + 10 + 2 + 1


def test_units_are_converted_to_micrometres(tmp_path: Path) -> None:
    root = _write_v05_plate(tmp_path / "nm.zarr", unit="nanometer", pixel=650.0)
    plate = omezarr.open_plate(root)
    assert plate.pixel_size_um == pytest.approx(0.65)
    assert plate.z_spacing_um == pytest.approx(0.0025)


def test_plate_without_arrays_is_not_detected(tmp_path: Path) -> None:
    root = _write_v05_plate(tmp_path / "empty.zarr", with_arrays=False)
    assert not omezarr.detect(root)
    assert "has plate metadata but no readable" in omezarr.explain(tmp_path)
    with pytest.raises(PlateFormatError, match="none of the 2 wells has image arrays"):
        omezarr.open_plate(root)


def _v2_plate(root: Path, well_path: str = "A/1", shape: list[int] | None = None) -> Path:
    def write(rel: str, name: str, doc: dict) -> None:
        (root / rel).mkdir(parents=True, exist_ok=True)
        (root / rel / name).write_text(json.dumps(doc))

    write(".", ".zgroup", {"zarr_format": 2})
    write(".", ".zattrs", {"plate": {"version": "0.4", "rows": [{"name": "A"}],
                                     "columns": [{"name": "1"}],
                                     "wells": [{"path": well_path, "rowIndex": 0,
                                                "columnIndex": 0}]}})
    write("A/1", ".zattrs", {"well": {"images": [{"path": "0"}]}})
    write("A/1/0", ".zattrs", {"multiscales": [{"version": "0.4", "axes": [
        {"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [{"path": "0"}]}]})
    write("A/1/0/0", ".zarray", {"zarr_format": 2, "shape": shape or [4, 4], "chunks": [4, 4],
                                 "dtype": "<u2", "compressor": None, "fill_value": 0,
                                 "order": "C", "filters": None})
    return root


def test_yx_only_plate_and_fill_value(tmp_path: Path) -> None:
    plate = omezarr.open_plate(_v2_plate(tmp_path / "p.zarr"))
    (rec,) = plate.records
    assert rec.index == () and plate.image_shape == (4, 4)
    np.testing.assert_array_equal(plate.read(rec), np.zeros((4, 4), np.uint16))


def test_well_path_escaping_the_plate_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PlateFormatError, match="must stay inside the plate"):
        omezarr.open_plate(_v2_plate(tmp_path / "p.zarr", well_path="../A"))


def test_absurd_array_shape_is_refused(tmp_path: Path) -> None:
    root = _v2_plate(tmp_path / "p.zarr", shape=[10**9, 10**9])
    with pytest.raises(PlateFormatError, match=r"A/1/0/0.*not plausible"):
        omezarr.open_plate(root)


def test_malformed_plate_json_names_the_file(tmp_path: Path) -> None:
    root = _v2_plate(tmp_path / "p.zarr")
    (root / "A/1/.zattrs").write_text('{"well": {"images": [')
    with pytest.raises(PlateFormatError, match=r"A/1/\.zattrs"):
        omezarr.open_plate(root)


@pytest.mark.parametrize("folder", [
    "phenix_harmonyv5_jump_BR00121482", "yokogawa_cv8000_minimal_zero_pixels",
    "imagexpress_mxp_export_zstack_9987_3434", "stitching_starrynight_graphpaper_tiles",
])
def test_other_formats_are_not_claimed(shared_data: Path, folder: str) -> None:
    assert not omezarr.detect(shared_data / folder)
