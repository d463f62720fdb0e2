"""Per-object measurement tables built from a 2-D label image (shape and intensity columns).

A table is a ``dict`` of column name -> 1-D NumPy array, all of the same length,
one row per object.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ._lazy import LazyModule

ndi = LazyModule("scipy.ndimage")

Table = dict[str, np.ndarray]

SHAPE_COLUMNS = ("label", "centroid_y", "centroid_x", "area", "perimeter", "eccentricity", "solidity")


def shape_table(labels: np.ndarray, pixel_size: float | None = None) -> Table:
    """Return label, centroid (y, x in pixels), area, perimeter, eccentricity, solidity per object.

    With ``pixel_size`` (µm per pixel) ``area_um2`` and ``perimeter_um`` are added.
    """
    from skimage.measure import regionprops_table

    props = regionprops_table(
        labels, properties=("label", "centroid", "area", "perimeter", "eccentricity", "solidity")
    )
    table: Table = {
        "label": np.asarray(props["label"], dtype=np.int64),
        "centroid_y": np.asarray(props["centroid-0"], dtype=np.float64),
        "centroid_x": np.asarray(props["centroid-1"], dtype=np.float64),
        "area": np.asarray(props["area"], dtype=np.int64),
        "perimeter": np.asarray(props["perimeter"], dtype=np.float64),
        "eccentricity": np.asarray(props["eccentricity"], dtype=np.float64),
        "solidity": np.asarray(props["solidity"], dtype=np.float64),
    }
    if pixel_size:
        table["area_um2"] = table["area"] * float(pixel_size) ** 2
        table["perimeter_um"] = table["perimeter"] * float(pixel_size)
    return table


def intensity_columns(image: np.ndarray, labels: np.ndarray, ids: np.ndarray, suffix: str = "") -> Table:
    """Return mean, integrated (sum) and max intensity of ``image`` in each object of ``ids``."""
    img = np.asarray(image, dtype=np.float64)
    if ids.size == 0:
        empty = np.zeros(0, np.float64)
        return {f"mean_intensity{suffix}": empty, f"integrated_intensity{suffix}": empty.copy(),
                f"max_intensity{suffix}": empty.copy()}
    total = np.asarray(ndi.sum_labels(img, labels, index=ids), dtype=np.float64)
    count = np.asarray(ndi.sum_labels(np.ones_like(img), labels, index=ids), dtype=np.float64)
    return {
        f"mean_intensity{suffix}": total / np.maximum(count, 1),
        f"integrated_intensity{suffix}": total,
        f"max_intensity{suffix}": np.asarray(ndi.maximum(img, labels, index=ids), dtype=np.float64),
    }


def column_suffixes(n: int, channel_names: Sequence[str] | None) -> list[str]:
    """Column suffixes for ``n`` channels: ``_<name>`` from distinct channel names, else ``_ch<i>``.

    Examples
    --------
    >>> column_suffixes(2, ("DAPI", "GFP 488"))
    ['_DAPI', '_GFP_488']
    >>> column_suffixes(2, ("w1", "w1"))
    ['_ch0', '_ch1']
    """
    if channel_names is not None and len(channel_names) == n:
        names = [re.sub(r"[^0-9A-Za-z]+", "_", str(c)).strip("_") for c in channel_names]
        if all(names) and len(set(names)) == n:
            return [f"_{name}" for name in names]
    return [f"_ch{i}" for i in range(n)]


def object_table(labels: np.ndarray, images: Sequence[np.ndarray], suffixes: Sequence[str],
                 pixel_size: float | None = None) -> Table:
    """Shape columns of ``labels`` plus intensity columns of each image (one suffix per image)."""
    table = shape_table(labels, pixel_size)
    for image, suffix in zip(images, suffixes):
        table.update(intensity_columns(image, labels, table["label"], suffix))
    return table


def concat_tables(tables: Sequence[Table]) -> Table:
    """Concatenate tables with the same columns, row-wise."""
    if not tables:
        return {}
    return {key: np.concatenate([t[key] for t in tables]) for key in tables[0]}


def summary_row(table: Table, count_key: str = "label") -> Table:
    """One-row summary: ``count`` of objects and the mean of area and intensity columns.

    Means over no objects are NaN.
    """
    n = len(table[count_key])
    row: Table = {"count": np.array([n], dtype=np.int64)}
    for key, values in table.items():
        if key == "area" or key == "area_um2" or key.startswith("mean_intensity"):
            mean = float(np.mean(values)) if n else float("nan")
            row[f"mean_{key}" if not key.startswith("mean_") else key] = np.array([mean])
    return row
