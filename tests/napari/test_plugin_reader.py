"""The reader: plates in, lazy layers out; anything else is declined quickly."""

from __future__ import annotations

import time
from pathlib import Path

import dask.array as da
import numpy as np
import pytest

from napari_openhcs import open_plate
from napari_openhcs._napari._layers import channel_colormap, raw_well_layers
from napari_openhcs._napari._output_layers import output_plate_layers
from napari_openhcs._napari._reader import get_reader, read_raw_plate, read_zarr_plate


@pytest.mark.parametrize("make", [
    lambda tmp: tmp / "missing",
    lambda tmp: tmp,  # empty folder
    lambda tmp: (tmp / "notes.txt").write_text("x") and tmp / "notes.txt",
    lambda tmp: (tmp / "d").mkdir() or (tmp / "d" / "a.tif").write_bytes(b"no") or tmp / "d",
])
def test_non_plates_are_declined_quickly(tmp_path: Path, make) -> None:
    path = make(tmp_path)
    t0 = time.perf_counter()
    assert get_reader(str(path)) is None
    assert time.perf_counter() - t0 < 1.0


def test_several_paths_are_declined(tiny_plate: Path) -> None:
    assert get_reader([str(tiny_plate), str(tiny_plate)]) is None


def test_raw_plate_opens_first_well_lazily(tiny_plate: Path) -> None:
    assert get_reader(str(tiny_plate)) is read_raw_plate
    layers = read_raw_plate(str(tiny_plate))
    plate = open_plate(tiny_plate)
    assert len(layers) == len(plate.sites) * len(plate.channels)
    data, kwargs, kind = layers[0]
    assert kind == "image"
    assert isinstance(data, da.Array)
    assert data.shape == (len(plate.timepoints), len(plate.z_indices), *plate.image_shape)
    assert kwargs["name"] == f"{plate.wells[0]} s1 {plate.channels[0].name}"
    assert kwargs["scale"][-2:] == (plate.pixel_size_um, plate.pixel_size_um)
    assert kwargs["scale"][1] == plate.z_spacing_um
    y, x = plate.site_position_um(plate.wells[0], 1)
    assert kwargs["translate"][-2:] == (y, x)
    rec = next(r for r in plate.records_for(plate.wells[0]) if (r.site, r.channel, r.z) == (1, 1, 2))
    np.testing.assert_array_equal(np.asarray(data[0, 1]), plate.read(rec))


def test_raw_layers_of_another_well(tiny_plate: Path) -> None:
    plate = open_plate(tiny_plate)
    names = {kw["name"] for _, kw, _ in raw_well_layers(plate, plate.wells[1])}
    assert all(n.startswith(plate.wells[1]) for n in names)


def test_channel_colours() -> None:
    assert channel_colormap("00ff00", 0, 2) == "#00FF00"
    assert channel_colormap(None, 0, 1) == "gray"
    assert channel_colormap(None, 0, 2, wavelength_nm=452) == "blue"
    assert channel_colormap(None, 1, 2, wavelength_nm=520) == "green"


def test_zarr_plate_reader(shared_data: Path) -> None:
    plate_dir = shared_data / "omezarr_hcs_faimipa_converted_9987_3434" / "ix_9987_3434.zarr"
    assert get_reader(str(plate_dir)) is read_zarr_plate
    layers = read_zarr_plate(str(plate_dir))
    images = [ld for ld in layers if ld[2] == "image"]
    assert [kw["name"].split(" ", 1)[1] for _, kw, _ in images] == ["DAPI", "Maximum-Projection_FITC",
                                                                    "Texas Red"]
    data, kwargs, _ = images[0]
    assert kwargs["multiscale"] and isinstance(data, list) and len(data) == 3
    assert all(isinstance(level, da.Array) for level in data)
    assert data[0].shape[-1] == 2 * data[1].shape[-1]
    assert kwargs["colormap"] == "#0051FF"
    labels = [ld for ld in layers if ld[2] == "points"][0]
    assert list(labels[1]["features"]["well"]) == ["B02", "B03"]
    # the mosaic holds each well's pixels at its place
    from napari_openhcs.io import open_output_plate

    src = open_output_plate(plate_dir)
    b02 = np.asarray(src.fields("B02")[0])  # (c, z, y, x)
    np.testing.assert_array_equal(np.asarray(data[0][0, :, : b02.shape[2], : b02.shape[3]]), b02[0])


def test_output_plate_features(shared_data: Path) -> None:
    plate_dir = shared_data / "omezarr_hcs_faimipa_converted_9987_3434" / "ix_9987_3434.zarr"
    layers = output_plate_layers(plate_dir, features={"well": ["B03"], "cells: count": [7.0]})
    feats = layers[-1][1]["features"]
    assert feats["cells: count"][1] == 7.0 and np.isnan(feats["cells: count"][0])


def test_prefetched_layers_hold_the_same_pixels_and_the_first_plane_in_memory(tmp_path: Path) -> None:
    import shutil

    from _ngff import write_plate

    from napari_openhcs._napari._prefetch import prefetch_first_plane

    path, pixels, mask = write_plate(tmp_path)
    lazy = output_plate_layers(path)
    ready = prefetch_first_plane(lazy)
    expected = {}
    for (a, _, kind), (b, kwargs, _) in zip(lazy, ready):
        if kind == "points":
            continue
        for la, lb in zip(a, b):
            assert isinstance(lb, da.Array) and lb.shape == la.shape
            np.testing.assert_array_equal(np.asarray(lb), np.asarray(la))
            expected[id(lb)] = (lb, np.asarray(la[0, 0]))
        if kind == "image":
            assert kwargs["contrast_limits"] == (float(pixels[::2, ::2].min()), float(pixels[::2, ::2].max()))
    shutil.rmtree(path)  # what napari shows first no longer needs the store
    for lb, plane in expected.values():
        np.testing.assert_array_equal(np.asarray(lb[0, 0]), plane)
