"""A small NGFF 0.5 HCS plate written by hand with zarr, with an NGFF label image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PIXEL_UM = 0.65
LABEL_RGBA = {1: [255, 0, 0, 255], 2: [0, 255, 0, 255]}


def _multiscale(group, arrays: list[np.ndarray], axes: list[dict], scale0: list[float], extra: dict) -> None:
    datasets = []
    for k, arr in enumerate(arrays):
        group.create_array(str(k), data=arr, chunks=arr.shape)
        factor = 2 ** k
        scale = [s * (factor if i >= len(scale0) - 2 else 1) for i, s in enumerate(scale0)]
        datasets.append({"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": scale}]})
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": datasets}], **extra}


def write_plate(root: Path, *, with_labels: bool = True) -> tuple[Path, np.ndarray, np.ndarray]:
    """Write ``root/hand.zarr``: well B03, one field, (c=1, z=1, 32, 32) in two levels.

    Returns the plate path, the image and the label image (full resolution, ``(y, x)``).
    """
    import zarr

    path = root / "hand.zarr"
    plate = zarr.open_group(str(path), mode="w", zarr_format=3)
    plate.attrs["ome"] = {"version": "0.5", "plate": {
        "columns": [{"name": "3"}], "rows": [{"name": "B"}],
        "wells": [{"path": "B/3", "rowIndex": 0, "columnIndex": 0}], "field_count": 1}}
    well = plate.create_group("B").create_group("3")
    well.attrs["ome"] = {"version": "0.5", "well": {"images": [{"path": "0"}]}}
    image = well.create_group("0")
    axes = [{"name": "c", "type": "channel"}, {"name": "z", "type": "space", "unit": "micrometer"},
            {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"}]
    pixels = np.arange(32 * 32, dtype=np.uint16).reshape(1, 1, 32, 32)
    _multiscale(image, [pixels, pixels[..., ::2, ::2]], axes, [1.0, 2.0, PIXEL_UM, PIXEL_UM],
                {"omero": {"channels": [{"label": "DAPI", "color": "0000FF"}]}})
    mask = np.zeros((1, 1, 32, 32), dtype=np.uint32)
    mask[..., 4:12, 4:12] = 1
    mask[..., 20:28, 18:30] = 2
    if with_labels:
        labels = image.create_group("labels")
        labels.attrs["ome"] = {"version": "0.5", "labels": ["nuclei"]}
        nuclei = labels.create_group("nuclei")
        _multiscale(nuclei, [mask, mask[..., ::2, ::2]], axes, [1.0, 2.0, PIXEL_UM, PIXEL_UM], {
            "image-label": {"version": "0.5", "colors": [{"label-value": v, "rgba": c}
                                                           for v, c in LABEL_RGBA.items()],
                            "source": {"image": "../../"}}})
    return path, pixels[0, 0], mask[0, 0]
