"""The OME-Zarr 0.5 HCS plate writer: NGFF validity, readers, round trip, resume/overwrite."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_openhcs.io import HCSPlateWriter, OutputChannel, open_output_plate
from napari_openhcs.io._pyramid import build_pyramid, downsample_2x, level_shapes

SHAPE = (1, 2, 3, 300, 500)  # T, C, Z, Y, X
CHANNELS = [OutputChannel("DAPI", "0000FF"), OutputChannel("GFP", "#00ff00")]
WELLS = ("B03", "C11")
N_FIELDS = 2


def _fields(well: str, dtype: str) -> list[np.ndarray]:
    rng = np.random.default_rng(sum(map(ord, well)))
    if np.dtype(dtype).kind == "f":
        return [rng.normal(100, 20, SHAPE).astype(dtype) for _ in range(N_FIELDS)]
    return [rng.integers(0, 60000, SHAPE, dtype=dtype) for _ in range(N_FIELDS)]


@pytest.fixture(scope="module", params=["uint16", "float32"])
def plate(request, tmp_path_factory):
    """A 96-well plate with 2 wells × 2 fields of ``SHAPE``; returns (path, data, dtype)."""
    dtype = request.param
    path = tmp_path_factory.mktemp(dtype) / "out.zarr"
    writer = HCSPlateWriter(
        path, plate_name="P1", rows=8, columns=12, attributes={"pipeline": {"steps": ["a"]}}
    )
    writer.create()
    data = {}
    for well in WELLS:
        data[well] = _fields(well, dtype)
        writer.write_well(
            well,
            data[well],
            channels=CHANNELS,
            pixel_size_um=0.65,
            z_spacing_um=2.0,
            well_attributes={"pipeline_hash": "h1"},
        )
    assert writer.register_completed_wells(list(WELLS)) == list(WELLS)
    return path, data, dtype


def _json(path: Path) -> dict:
    return json.loads((path / "zarr.json").read_text())


def test_validates_against_ngff_05_schemas(plate):
    from ome_zarr_models.exceptions import ValidationWarning
    from ome_zarr_models.v05.hcs import HCS
    from ome_zarr_models.v05.image import Image
    from ome_zarr_models.v05.well import Well

    path = plate[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ValidationWarning)
        hcs = HCS.from_zarr(zarr.open_group(path, mode="r"))
        assert hcs.n_wells == 2
        wells = list(hcs.well_groups)
        assert len(wells) == 2
        for well in WELLS:
            row, col = well[0], well[1:]
            well_model = Well.from_zarr(zarr.open_group(path / row / col, mode="r"))
            assert [im.path for im in well_model.ome_attributes.well.images] == ["0", "1"]
            for field in ("0", "1"):
                image = Image.from_zarr(zarr.open_group(path / row / col / field, mode="r"))
                assert len(image.ome_attributes.multiscales[0].datasets) == 2


def test_plate_metadata_lists_layout_and_wells(plate):
    attrs = _json(plate[0])["attributes"]
    meta = attrs["ome"]["plate"]
    assert attrs["ome"]["version"] == "0.5"
    assert [r["name"] for r in meta["rows"]] == list("ABCDEFGH")
    assert [c["name"] for c in meta["columns"]][:3] == ["01", "02", "03"]
    assert meta["wells"] == [
        {"path": "B/03", "rowIndex": 1, "columnIndex": 2},
        {"path": "C/11", "rowIndex": 2, "columnIndex": 10},
    ]
    assert meta["field_count"] == N_FIELDS
    assert attrs["napari_openhcs"]["pipeline"] == {"steps": ["a"]}
    assert attrs["napari_openhcs"]["writer"]["name"] == "napari-openhcs"


def test_image_metadata_scale_axes_omero_and_chunks(plate):
    from ome_zarr_models.common.omero import Omero

    path, data, dtype = plate
    field = path / "B" / "03" / "0"
    ome = _json(field)["attributes"]["ome"]
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["t", "c", "z", "y", "x"]
    assert [a.get("unit") for a in ms["axes"]] == [None, None, "micrometer"] + ["micrometer"] * 2
    scales = [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]]
    assert scales == [[1.0, 1.0, 2.0, 0.65, 0.65], [1.0, 1.0, 2.0, 1.3, 1.3]]
    omero = Omero.model_validate(ome["omero"])
    assert [c["label"] for c in ome["omero"]["channels"]] == ["DAPI", "GFP"]
    assert [c.color for c in omero.channels] == ["0000FF", "00FF00"]
    win = omero.channels[1].window
    ch = data["B03"][0][:, 1]
    assert win.min == pytest.approx(float(ch.min())) and win.max == pytest.approx(float(ch.max()))
    assert win.min <= win.start < win.end <= win.max

    arr = _json(field / "0")
    assert arr["dimension_names"] == ["t", "c", "z", "y", "x"]
    assert arr["data_type"] == dtype
    assert arr["chunk_grid"]["configuration"]["chunk_shape"] == [1, 1, 1, 300, 500]
    blosc = [c for c in arr["codecs"] if c["name"] == "blosc"]
    assert blosc and blosc[0]["configuration"]["cname"] == "zstd"


def test_round_trip_with_our_reader(plate):
    path, data, dtype = plate
    out = open_output_plate(path)
    assert out.name == "P1"
    assert out.wells == list(WELLS)
    assert out.channels == [OutputChannel("DAPI", "0000FF"), OutputChannel("GFP", "00FF00")]
    assert out.pixel_size_um == pytest.approx(0.65)
    assert out.attributes["pipeline"] == {"steps": ["a"]}
    assert out.well_attributes("B03")["pipeline_hash"] == "h1"
    for well in WELLS:
        fields = out.fields(well)
        assert len(fields) == N_FIELDS
        for got, expected in zip(fields, data[well]):
            assert got.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(got[...], expected)
        levels = out.levels(well, 1)
        assert [a.shape for a in levels] == [SHAPE, (1, 2, 3, 150, 250)]
        np.testing.assert_array_equal(levels[1][...], downsample_2x(data[well][1]))


def test_read_with_ome_zarr_py(plate):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    path, data, _ = plate
    nodes = list(Reader(parse_url(str(path)))())
    node = nodes[0]
    assert node.metadata["metadata"]["plate"]["name"] == "P1"
    assert [a["name"] for a in node.metadata["axes"]] == ["t", "c", "z", "y", "x"]
    assert len(node.data) == 2  # pyramid levels
    assert node.data[0].shape == (1, 2, 3, 8 * 300, 12 * 500)
    # ome-zarr-py shows field 0 of each well at its place in the plate grid
    tile = np.asarray(node.data[0][..., 300:600, 1000:1500])
    np.testing.assert_array_equal(tile, data["B03"][0])


def test_resume_keeps_completed_wells_and_overwrite_clears(plate, tmp_path):
    path = tmp_path / "p.zarr"
    fields = _fields("B03", "uint16")
    kwargs = dict(channels=CHANNELS, pixel_size_um=0.5)
    writer = HCSPlateWriter(path, plate_name="P", rows=8, columns=12)
    writer.create()
    writer.write_well("B03", fields, well_attributes={"pipeline_hash": "x"}, **kwargs)
    (path / ".tmp-B-04-dead").mkdir()  # left by a killed worker

    again = HCSPlateWriter(path, plate_name="P", rows=8, columns=12, attributes={"run": 2})
    again.create()
    assert again.completed_wells()["B03"]["pipeline_hash"] == "x"
    assert not (path / ".tmp-B-04-dead").exists()
    assert open_output_plate(path).wells == ["B03"]
    assert open_output_plate(path).attributes["run"] == 2

    (path / ".napari-openhcs.lock").write_text("{}")
    again.create(overwrite=True)
    assert again.completed_wells() == {}
    assert open_output_plate(path).wells == []
    assert (path / ".napari-openhcs.lock").exists()


def test_rewrite_and_remove_well(tmp_path):
    path = tmp_path / "p.zarr"
    writer = HCSPlateWriter(path, plate_name="P", rows=8, columns=12)
    writer.create()
    first, second = _fields("B03", "uint16"), _fields("C11", "uint16")
    for fields, tag in ((first, "1"), (second, "2")):
        writer.write_well("b3", fields, channels=CHANNELS, pixel_size_um=None, well_attributes={"v": tag})
    writer.register_completed_wells()
    out = open_output_plate(path)
    np.testing.assert_array_equal(out.fields("B03")[0][...], second[0])
    assert out.well_attributes("B03")["v"] == "2"
    assert out.pixel_size_um is None
    assert not [p for p in path.iterdir() if p.name.startswith(".")]

    writer.remove_well("B03")
    assert writer.completed_wells() == {}
    assert open_output_plate(path).wells == []


def test_create_refuses_foreign_folders(tmp_path):
    foreign = tmp_path / "data"
    foreign.mkdir()
    (foreign / "image.tif").write_bytes(b"x")
    writer = HCSPlateWriter(foreign, plate_name="P", rows=8, columns=12)
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="not an OME-Zarr plate written by napari-openhcs"):
            writer.create(overwrite=overwrite)
    assert (foreign / "image.tif").exists()

    ours = tmp_path / "ours.zarr"
    HCSPlateWriter(ours, plate_name="P", rows=8, columns=12).create()
    with pytest.raises(FileExistsError, match="16 × 24"):
        HCSPlateWriter(ours, plate_name="P", rows=16, columns=24).create()


def test_write_well_rejects_bad_input(tmp_path):
    writer = HCSPlateWriter(tmp_path / "p.zarr", plate_name="P", rows=8, columns=12)
    good = np.zeros((1, 2, 1, 8, 8), np.uint16)
    with pytest.raises(FileNotFoundError, match="create"):
        writer.write_well("A01", [good], channels=CHANNELS, pixel_size_um=1.0)
    writer.create()
    with pytest.raises(ValueError, match="5-D"):
        writer.write_well("A01", [good[0]], channels=CHANNELS, pixel_size_um=1.0)
    with pytest.raises(ValueError, match="channels"):
        writer.write_well("A01", [good], channels=CHANNELS[:1], pixel_size_um=1.0)
    with pytest.raises(ValueError, match="one shape"):
        writer.write_well("A01", [good, good[..., :4]], channels=CHANNELS, pixel_size_um=1.0)
    with pytest.raises(ValueError, match="outside"):
        writer.write_well("M01", [good], channels=CHANNELS, pixel_size_um=1.0)
    assert writer.completed_wells() == {}
    with pytest.raises(ValueError, match="hex"):
        OutputChannel("x", "blue")


@pytest.mark.parametrize(
    ("yx", "expected"),
    [
        ((300, 500), [(300, 500), (150, 250)]),
        ((255, 4000), [(255, 4000)]),
        ((2048, 2048), [(2048, 2048), (1024, 1024), (512, 512), (256, 256), (128, 128)]),
        ((20000, 20000), [(20000 // 2**i,) * 2 for i in range(5)]),
        ((513, 513), [(513, 513), (257, 257), (129, 129)]),
    ],
)
def test_level_shapes(yx, expected):
    assert level_shapes(yx) == expected


def test_downsampling_mean_and_nearest():
    img = np.array([[0, 2, 10], [4, 6, 10], [1, 1, 7]], dtype=np.uint16)
    np.testing.assert_array_equal(downsample_2x(img), [[3, 10], [1, 7]])
    np.testing.assert_array_equal(downsample_2x(img, method="nearest"), [[0, 10], [1, 7]])
    labels = np.zeros((1, 1, 1, 600, 600), np.int32)
    labels[..., 100:200, 100:200] = 7
    pyramid = build_pyramid(labels, method="nearest")
    assert [p.shape[-2:] for p in pyramid] == [(600, 600), (300, 300), (150, 150)]
    assert set(np.unique(pyramid[-1])) == {0, 7}
    floats = np.arange(16, dtype=np.float32).reshape(4, 4)
    assert downsample_2x(floats)[0, 0] == pytest.approx(2.5)


def test_output_plate_reads_back_as_an_input_plate(plate):
    pytest.importorskip("napari_openhcs.microscopes.omezarr")
    from napari_openhcs.microscopes.detect import open_plate

    path, data, dtype = plate
    raw = open_plate(path)
    assert raw.microscope == "omezarr"
    assert raw.wells == WELLS
    assert [c.name for c in raw.channels] == ["DAPI", "GFP"]
    assert raw.pixel_size_um == pytest.approx(0.65)
    rec = next(r for r in raw.records_for("C11") if (r.site, r.channel, r.z) == (2, 2, 3))
    np.testing.assert_array_equal(raw.read(rec), data["C11"][1][0, 1, 2])


def test_chunks_that_hold_only_zeros_are_written_too(tmp_path):
    path = tmp_path / "zeros.zarr"
    writer = HCSPlateWriter(path, plate_name="Z", rows=8, columns=12, chunk_yx=100)
    writer.create()
    field = np.zeros((1, 1, 1, 300, 500), np.float32)  # 3 x 5 chunks of 100 x 100
    field[..., 200:, 400:] = 5.0  # one chunk not 0
    field[..., :100, :100] = -0.0  # one of negative zeros
    writer.write_well("A01", [field], channels=[OutputChannel("DAPI", "0000FF")], pixel_size_um=1.0)
    writer.register_completed_wells(["A01"])
    level0 = path / "A" / "01" / "0" / "0"
    assert len([p for p in level0.rglob("*") if p.is_file() and p.name != "zarr.json"]) == 15
    back = open_output_plate(path).fields("A01")[0][...]
    np.testing.assert_array_equal(back, field)
    assert np.signbit(back[0, 0, 0, 0, 0]) and not np.signbit(back[0, 0, 0, 150, 150])
