"""Output plates open in the tools users have: ome-zarr-models, ome-zarr-py and our reader.

Each kind of plate (see ``_output_plates``): the demo output, a stitched real plate, a
time series whose tile positions differ between timepoints, and a plate with labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _output_plates import REAL_PLATE, TIMESERIES, make_output_plate
from napari_openhcs.io import open_output_plate


def _fields(path: Path):
    out = open_output_plate(path)
    return out, [(w, i) for w in out.wells for i in range(len(out.field_paths(w)))]


def test_every_well_of_a_plate_has_one_shape_per_level(output_plate) -> None:
    kind, path = output_plate
    out, fields = _fields(path)
    assert len(out.wells) >= 2
    shapes = {tuple(tuple(a.shape) for a in out.levels(w, i)) for w, i in fields}
    assert len(shapes) == 1, f"{kind}: wells differ in shape {shapes}"
    for w, i in fields:
        record = out.field_attributes(w, i)
        extent = record["extent"]
        full = out.levels(w, i)[0]
        assert 0 < extent["y"] <= full.shape[-2] and 0 < extent["x"] <= full.shape[-1]
        data = np.asarray(full)
        # the padding is the fill value, never data
        assert not data[..., extent["y"]:, :].any() and not data[..., :, extent["x"]:].any()
        assert data[..., : extent["y"], : extent["x"]].any()


def test_validates_as_ngff_05_hcs_image_and_labels(output_plate) -> None:
    import zarr
    from ome_zarr_models.v05.hcs import HCS
    from ome_zarr_models.v05.image import Image
    from ome_zarr_models.v05.image_label import ImageLabel
    from ome_zarr_models.v05.labels import Labels

    kind, path = output_plate
    HCS.from_zarr(zarr.open_group(path, mode="r"))
    out, fields = _fields(path)
    n_labels = 0
    for w, i in fields:
        field = path / "/".join(out._well_paths[w].split("/")) / out.field_paths(w)[i]
        Image.from_zarr(zarr.open_group(field, mode="r"))
        for name in out.label_names(w, i):
            Labels.from_zarr(zarr.open_group(field / "labels", mode="r"))
            ImageLabel.from_zarr(zarr.open_group(field / "labels" / name, mode="r"))
            n_labels += 1
    assert (n_labels > 0) == (kind == "labels")


def test_ome_zarr_py_reads_the_plate_node_and_the_labels(output_plate) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Labels, Multiscales, Plate, Reader

    kind, path = output_plate
    nodes = list(Reader(parse_url(str(path)))())
    assert any(isinstance(s, Plate) for s in nodes[0].specs), nodes[0].specs
    lowest = np.asarray(nodes[0].data[-1])  # every well read into one grid
    assert lowest.any()
    out, fields = _fields(path)
    w, i = fields[0]
    image = path / out._well_paths[w] / out.field_paths(w)[i]
    nodes = list(Reader(parse_url(str(image)))())
    assert any(isinstance(s, Multiscales) for s in nodes[0].specs)
    labels = [n for n in nodes if any(isinstance(s, Label) for s in n.specs)]
    if kind == "labels":
        assert any(isinstance(s, Labels) for n in nodes for s in n.specs)
        assert [n.metadata["name"] for n in labels] == out.label_names(w, i)
        arr = np.asarray(labels[0].data[0])
        assert np.issubdtype(arr.dtype, np.integer) and arr.max() > 0
        assert arr.shape[-2:] == tuple(out.levels(w, i)[0].shape[-2:])
    else:
        assert not labels


def test_every_space_axis_has_its_unit(output_plate) -> None:
    import zarr

    kind, path = output_plate
    out, fields = _fields(path)
    for w, i in fields:
        image = zarr.open_group(path / out._well_paths[w] / out.field_paths(w)[i], mode="r")
        axes = image.attrs["ome"]["multiscales"][0]["axes"]
        assert all(a.get("unit") == "micrometer" for a in axes if a["type"] == "space"), axes
    if kind == "real":  # z projected: one plane, but the plate's ~3 µm spacing and its unit kept
        scale = image.attrs["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
        assert scale[2] == pytest.approx(3.02, abs=0.01)  # median of the plate's four stacks


def test_time_series_shares_one_set_of_positions_and_one_canvas(tmp_path: Path) -> None:
    from napari_openhcs.io import read_table_csv

    path = make_output_plate("timeseries", tmp_path, None)
    out = open_output_plate(path)
    positions = read_table_csv(path.parent / "tables" / "positions.csv")
    for well in out.wells:
        rows = positions["well"] == well
        assert rows.sum() == TIMESERIES.n_sites  # one set per well, not one per timepoint
        assert "timepoint" not in positions or len(set(positions["timepoint"][rows])) <= 1
        data = np.asarray(out.fields(well)[0])
        assert data.shape[0] == TIMESERIES.timepoints
        assert all(data[t].any() for t in range(data.shape[0]))


def test_slots_without_a_raw_image_are_not_written_nor_in_the_windows(
    shared_data: Path, tmp_path: Path
) -> None:
    """FITC and Texas Red of this plate have one plane where DAPI has two: their second
    plane is no data (chunks left unwritten, listed in the metadata, out of the windows)."""
    import zarr

    from napari_openhcs import FunctionStep, GlobalPipelineConfig, PipelineOrchestrator, VariableComponents
    from napari_openhcs.functions.registry import get_function

    orch = PipelineOrchestrator(shared_data / REAL_PLATE, global_config=GlobalPipelineConfig(
        num_workers=1, output_dir=tmp_path, executor="threads"))
    blur = get_function("gaussian_blur").func
    steps = [FunctionStep(func=blur, variable_components=[VariableComponents.SITE])]
    results = orch.run(steps)
    assert all(r.status == "done" for r in results.values()), {w: r.error for w, r in results.items()}
    out = open_output_plate(orch.output_path)
    field = orch.output_path / "B" / "03" / "0"
    record = out.field_attributes("B03", 0)
    missing = {tuple(m) for m in record["missing_planes"]}
    assert missing and record["fill_value"] == 0
    for t, c, z in missing:
        assert not (field / "0" / "c" / str(t) / str(c) / str(z) / "0" / "0").exists()
    data = np.asarray(out.fields("B03")[0])
    assert all(not data[m].any() for m in missing)
    windows = [ch["window"] for ch in zarr.open_group(field, mode="r").attrs["ome"]["omero"]["channels"]]
    for c, win in enumerate(windows):  # the window is the range of the real planes only
        real = [data[0, c, z] for z in range(data.shape[2]) if (0, c, z) not in missing]
        assert win["min"] == pytest.approx(float(np.min(real)))
        assert win["min"] > 0
