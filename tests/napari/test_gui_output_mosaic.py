"""An output plate opened with ``viewer.open``: one Dask graph per level, every field at its place.

The expected mosaic is built here from the plate as Zarr reads it (``OutputPlate``), by
the layout rules: a cell holds the largest field (rounded up to the coarsest level's
factor), a well is ``ceil(sqrt(fields))`` cells wide plus a gap of 8 % of a cell, wells
sit at their plate row and column from the first row and column present, and what no
field covers is 0.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_openhcs import FunctionStep, GlobalPipelineConfig, PipelineOrchestrator, VariableComponents
from napari_openhcs._napari import _zarr_chunks
from napari_openhcs._napari._output_layers import output_plate_layers
from napari_openhcs.functions.registry import get_function
from napari_openhcs.io import open_output_plate
from napari_openhcs.microscopes.plate import parse_well

PLUGIN = "napari-openhcs"


def _tczyx(arr: np.ndarray, axes: list[str]) -> np.ndarray:
    for i, ax in enumerate("tczyx"):
        if ax not in axes:
            arr = np.expand_dims(arr, i)
            axes = [*axes[:i], ax, *axes[i:]]
    return arr


def expected_mosaic(path: Path, channel: int, level: int) -> np.ndarray:
    """The ``(T, Z, Y, X)`` mosaic of one channel at one level, from Zarr's reads."""
    plate = open_output_plate(path)
    axes = [a.lower() for a in plate.axes]
    fields = {w: [plate.levels(w, f) for f in range(len(plate.field_paths(w)))] for w in plate.wells}
    first = fields[plate.wells[0]][0]
    n_levels = min(len(p) for ps in fields.values() for p in ps)
    fmax = round(first[0].shape[-1] / first[n_levels - 1].shape[-1])
    fk = round(first[0].shape[-1] / first[level].shape[-1])
    all0 = [_tczyx(np.zeros(p[0].shape, bool), axes).shape for ps in fields.values() for p in ps]
    t_n, _, z_n = (max(s[i] for s in all0) for i in range(3))
    cell_y = math.ceil(max(s[3] for s in all0) / fmax) * fmax
    cell_x = math.ceil(max(s[4] for s in all0) / fmax) * fmax
    n_fields = max(len(ps) for ps in fields.values())
    f_cols = max(1, math.ceil(math.sqrt(n_fields)))
    gap = math.ceil(0.08 * max(cell_y, cell_x) / fmax) * fmax
    well_y, well_x = (math.ceil(n_fields / f_cols) * cell_y + gap) // fk, (f_cols * cell_x + gap) // fk
    pos = {w: parse_well(w) for w in plate.wells}
    r0, c0 = min(r for r, _ in pos.values()), min(c for _, c in pos.values())
    n_r, n_c = max(r for r, _ in pos.values()) - r0 + 1, max(c for _, c in pos.values()) - c0 + 1
    out = np.zeros((t_n, z_n, n_r * well_y, n_c * well_x), dtype=first[0].dtype)
    for w, ps in fields.items():
        for i in range(len(ps)):
            field = _tczyx(np.asarray(ps[i][level]), axes)[:, channel]
            y = (pos[w][0] - r0) * well_y + (i // f_cols) * (cell_y // fk)
            x = (pos[w][1] - c0) * well_x + (i % f_cols) * (cell_x // fk)
            t, z, h, wd = field.shape
            out[:t, :z, y:y + h, x:x + wd] = field
    return out


def _levels(layer) -> list:
    return list(layer.data) if layer.multiscale else [layer.data]


def _check_one_graph_per_level(layer) -> None:
    for level in _levels(layer):
        graph = level.__dask_graph__()
        assert len(graph.layers) == 1, list(graph.layers)  # no from_zarr / pad / block layers
        assert len(graph) == level.npartitions  # one task per block: nothing else in the graph


@pytest.fixture(scope="module")
def projected_plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output plate of ours: 3 wells over 2 rows, 2 × 2 sites of 64², 2 channels, max over z."""
    from napari_openhcs.testing import make_synthetic_plate

    base = tmp_path_factory.mktemp("projected")
    raw = make_synthetic_plate(base, plate_name="proj", wells=("B02", "B04", "C03"), grid=(2, 2),
                               tile_shape=(64, 64), channels=("DAPI", "FITC"), z_planes=2, seed=5)
    step = FunctionStep(func=get_function("max_projection").func, name="max over z",
                        variable_components=[VariableComponents.Z_INDEX])
    orch = PipelineOrchestrator(raw, global_config=GlobalPipelineConfig(
        num_workers=1, output_dir=base / "out", executor="threads"))
    results = orch.run([step])
    assert all(r.status == "done" for r in results.values()), results
    return Path(orch.output_path)


def test_our_plate_opens_as_one_graph_per_level_with_every_field_in_place(make_napari_viewer,
                                                                        projected_plate: Path) -> None:
    plate = open_output_plate(projected_plate)
    viewer = make_napari_viewer()
    layers = viewer.open(str(projected_plate), plugin=PLUGIN)
    images = [ly for ly in layers if ly._type_string == "image"]
    assert [ly.name for ly in images] == [f"proj {ch.name}" for ch in plate.channels]
    for ci, layer in enumerate(images):
        _check_one_graph_per_level(layer)
        got = np.asarray(_levels(layer)[0])
        want = expected_mosaic(projected_plate, ci, 0)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        # a known pixel: well C03 (one row below B, one column right of 02), field 3 (second
        # row and column of the well's 2 × 2), at (32, 17) in the field
        src = np.asarray(plate.levels("C03", 3)[0])[0, ci, 0]
        cell = src.shape[-1]
        well = 2 * cell + math.ceil(0.08 * cell)
        assert len(plate.field_paths("C03")) == 4
        assert got[0, 0, well + cell + 32, well + cell + 17] == src[32, 17] > 0
        # the contrast limits napari would find reading every pixel, from the metadata alone
        assert tuple(layer.contrast_limits) == (float(min(0, want.min())), float(want.max()))
    wells = next(ly for ly in layers if ly._type_string == "points")
    assert list(wells.features["well"]) == ["B02", "B04", "C03"]


def test_building_the_layers_reads_no_pixel(projected_plate: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    real = _zarr_chunks._read_chunk
    monkeypatch.setattr(_zarr_chunks, "_read_chunk",
                        lambda folder, *a: reads.append(folder) or real(folder, *a))
    layers = output_plate_layers(projected_plate)
    assert reads == []
    np.asarray(layers[0][0][0, 0])  # the first plane: each field's chunk of that plane, once
    plate = open_output_plate(projected_plate)
    assert len(reads) == sum(len(plate.field_paths(w)) for w in plate.wells)


def test_a_foreign_multiscale_plate_opens_with_every_field_in_place(make_napari_viewer,
                                                                   shared_data: Path) -> None:
    path = shared_data / "omezarr_hcs_faimipa_converted_9987_3434" / "ix_9987_3434.zarr"
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin=PLUGIN)
    images = [ly for ly in layers if ly._type_string == "image"]
    assert images and all(ly.multiscale for ly in images)
    for ci, layer in enumerate(images):
        _check_one_graph_per_level(layer)
        for k, level in enumerate(_levels(layer)):
            np.testing.assert_array_equal(np.asarray(level), expected_mosaic(path, ci, k))


def _hand_plate(root: Path) -> Path:
    """A plate of another tool: fields of different shapes, a listed field missing, sharded arrays."""
    path = root / "mixed.zarr"
    plate = zarr.open_group(str(path), mode="w", zarr_format=3)
    plate.attrs["ome"] = {"version": "0.5", "plate": {
        "columns": [{"name": "1"}, {"name": "2"}], "rows": [{"name": "A"}],
        "wells": [{"path": "A/1", "rowIndex": 0, "columnIndex": 0},
                  {"path": "A/2", "rowIndex": 0, "columnIndex": 1}]}}
    axes = [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    rng = np.random.default_rng(3)
    shapes = {"A/1": [(2, 40, 50), (2, 24, 60)], "A/2": [(1, 30, 30), None]}
    for well, fields in shapes.items():
        group = plate.create_group(well)
        images = [{"path": str(i)} for i in range(len(fields))]
        group.attrs["ome"] = {"version": "0.5", "well": {"images": images}}
        for i, shape in enumerate(fields):
            if shape is None:
                continue  # listed, not on disk
            image = group.create_group(str(i))
            data = rng.integers(1, 1000, size=shape).astype(np.uint16)
            extra = {"shards": (1, 16, 32)} if well == "A/2" else {}
            image.create_array("0", data=data, chunks=(1, 8, 16), **extra)
            image.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]}]}]}
    return path


def test_fields_of_different_shapes_and_missing_fields(make_napari_viewer, tmp_path: Path) -> None:
    path = _hand_plate(tmp_path)
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin=PLUGIN)
    images = [ly for ly in layers if ly._type_string == "image"]
    assert len(images) == 2
    for ci, layer in enumerate(images):
        _check_one_graph_per_level(layer)
        got = np.asarray(layer.data)
        plate = open_output_plate(path)
        want = np.zeros_like(got)
        cell_x = 60  # the widest field; the tallest is 40: one row of 2 cells per well
        gap = math.ceil(0.08 * cell_x)
        for w, col in (("A01", 0), ("A02", 1)):
            for i in range(2):
                try:
                    arr = np.asarray(plate.levels(w, i)[0])
                except (KeyError, FileNotFoundError):
                    continue
                if arr.shape[0] <= ci:
                    continue
                x = col * (2 * cell_x + gap) + i * cell_x
                want[0, 0, :arr.shape[1], x:x + arr.shape[2]] = arr[ci]
        np.testing.assert_array_equal(got, want)


def test_label_images_open_as_one_graph_per_level(make_napari_viewer, tmp_path: Path) -> None:
    from _ngff import write_plate

    path, _, mask = write_plate(tmp_path)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin=PLUGIN)
    labels = viewer.layers["hand nuclei"]
    _check_one_graph_per_level(labels)
    for k, level in enumerate(labels.data):
        np.testing.assert_array_equal(np.asarray(level[0, 0, :32 >> k, :32 >> k]), mask[::2 ** k, ::2 ** k])


def test_the_layers_can_be_sent_to_another_process(projected_plate: Path) -> None:
    """A Dask cluster pickles the graph (cloudpickle, as distributed does); the copy reads the same pixels."""
    import cloudpickle

    level = output_plate_layers(projected_plate)[1][0]
    copy = cloudpickle.loads(cloudpickle.dumps(level))
    np.testing.assert_array_equal(np.asarray(copy), np.asarray(level))
