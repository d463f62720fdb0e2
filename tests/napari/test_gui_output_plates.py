"""Output plates open as a plate in napari-ome-zarr and in our reader, through ``viewer.open``.

The plates are those of ``tests/_output_plates.py``: the demo output, a stitched real
plate, a time series whose tile positions differ between timepoints, and a plate with
labels (shown by napari-ome-zarr as Labels layers over the image).
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_openhcs.io import open_output_plate


def test_napari_ome_zarr_opens_the_plate_as_layers(output_plate, make_napari_viewer) -> None:
    kind, path = output_plate
    out = open_output_plate(path)
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-ome-zarr")
    images = [ly for ly in layers if ly._type_string == "image"]
    labels = [ly for ly in layers if ly._type_string == "labels"]
    assert [ly.name.split(": ", 1)[-1] for ly in images] == [ch.name for ch in out.channels]
    lowest = np.asarray(images[0].data[-1] if images[0].multiscale else images[0].data)
    assert lowest.any()
    if kind == "labels":
        assert len(labels) == len(out.label_names(out.wells[0]))
        grid = np.asarray(labels[0].data[-1] if labels[0].multiscale else labels[0].data)
        assert np.issubdtype(grid.dtype, np.integer) and grid.max() > 0
        assert grid.shape[-2:] == lowest.shape[-2:]  # the labels lie over the plate image
    else:
        assert not labels


@pytest.mark.parametrize("output_plate", ["labels"], indirect=True)
def test_napari_ome_zarr_opens_a_field_with_its_labels(output_plate, make_napari_viewer) -> None:
    _, path = output_plate
    out = open_output_plate(path)
    well = out.wells[0]
    viewer = make_napari_viewer()
    layers = viewer.open(str(path / out._well_paths[well] / "0"), plugin="napari-ome-zarr")
    labels = [ly for ly in layers if ly._type_string == "labels"]
    assert [ly.name.rsplit("/", 1)[-1] for ly in labels] == out.label_names(well)
    image = next(ly for ly in layers if ly._type_string == "image")
    assert labels[0].data[0].shape[-2:] == image.data[0].shape[-2:]


def test_our_reader_opens_the_plate_as_layers(output_plate, make_napari_viewer) -> None:
    kind, path = output_plate
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-openhcs")
    assert layers
    assert any(ly._type_string == "image" for ly in layers)
    labels = [ly for ly in layers if ly._type_string == "labels"]
    if kind == "labels":  # the engine's NGFF label images show as Labels layers over the mosaic
        out = open_output_plate(path)
        assert labels, [ly.name for ly in layers]
        image = next(ly for ly in layers if ly._type_string == "image")
        grid = np.asarray(labels[0].data[-1] if labels[0].multiscale else labels[0].data)
        assert np.issubdtype(grid.dtype, np.integer) and grid.max() > 0
        assert tuple(labels[0].scale[-2:]) == tuple(image.scale[-2:])
        assert len(labels) >= len(out.label_names(out.wells[0]))
    else:
        assert not labels
