"""Object measurements and counts, returned as tables (special outputs).

A table is a ``dict`` of column name -> 1-D NumPy array (one row per object, or one
per slice for summaries). The engine writes each table as CSV per well and for the
whole plate, adding ``well`` and the group's key columns (e.g. ``channel``,
``z_index``, ``timepoint``) itself; these functions add ``label``, ``slice`` (the
position in the stack: the site when a step stacks sites) and ``channel_name``
where they know them.

Intensity and shape columns: ``centroid_y``/``centroid_x`` (pixels), ``area``
(pixels), ``perimeter`` (pixels), ``eccentricity`` (0 circle - 1 line), ``solidity``
(area / convex area), ``mean_intensity``, ``integrated_intensity`` (sum),
``max_intensity``; with a known pixel size also ``area_um2`` and ``perimeter_um``.

Dtype rule: images pass through unchanged, or are int32 label images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._nuclei import (
    Area,
    BlockSize,
    Factor,
    MinDistance,
    NucleiOptions,
    Sigma,
    ThresholdMethod,
    propagate_cells,
    segment_nuclei_2d,
)
from ._object_table import (
    Table,
    column_suffixes,
    concat_tables,
    intensity_columns,
    object_table,
    shape_table,
    summary_row,
)
from ._slicewise import as_stack
from .registry import register
from .segmentation import channel_index, segment_nuclei


@register(category="Measurement", special_inputs=("labels",), special_outputs=("cell_table",),
          keywords=("measure", "features", "intensity", "shape", "regionprops", "objects", "table"))
def measure_objects(
    stack: np.ndarray,
    *,
    labels: np.ndarray,
    channel_names: Sequence[str] | None = None,
    pixel_size: float | None = None,
) -> tuple[np.ndarray, Table]:
    """Measure shape and intensity of every labelled object: the ``cell_table`` output.

    ``labels`` comes from an earlier step's ``labels`` output (e.g. ``detect_nuclei``).
    Two layouts:

    - labels with one slice per stack slice: one row per object and slice, with a
      ``slice`` column and plain ``mean_intensity``... columns;
    - one label slice for a stack of channels (``variable_components=[CHANNEL]``):
      one row per object, with ``mean_intensity_<channel>``... for every channel.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` intensity images.
    labels : ndarray
        ``(N, Y, X)`` or ``(1, Y, X)`` integer labels (special input; filled by the engine).
    channel_names : tuple of str, optional
        Channel of each slice (filled by the engine); names the intensity columns.
    pixel_size : float, optional
        µm per pixel (filled by the engine); adds ``area_um2`` and ``perimeter_um``.

    Returns
    -------
    stack : ndarray
        The input stack, unchanged.
    cell_table : dict of str to ndarray
        One row per object (special output ``cell_table``).

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((1, 32, 32), dtype=np.int32)
    >>> labels[0, 4:10, 4:10] = 1
    >>> labels[0, 20:24, 20:30] = 2
    >>> stack = np.where(labels > 0, 500, 100).astype(np.uint16)
    >>> _, table = measure_objects(stack, labels=labels, pixel_size=0.5)
    >>> table["label"].tolist(), table["area"].tolist(), table["mean_intensity"].tolist()
    ([1, 2], [36, 40], [500.0, 500.0])
    >>> table["area_um2"].tolist()
    [9.0, 10.0]
    """
    arr = as_stack(stack)
    lab = as_stack(labels)
    if lab.shape[1:] != arr.shape[1:]:
        raise ValueError(f"labels of shape {lab.shape[1:]} do not match images of shape {arr.shape[1:]}")
    if not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be an integer label image, got dtype {lab.dtype}")
    if lab.shape[0] == arr.shape[0]:
        tables = []
        for i, (image, slice_labels) in enumerate(zip(arr, lab)):
            measured = object_table(slice_labels, [image], [""], pixel_size)
            n = len(measured["label"])
            table: Table = {"slice": np.full(n, i, dtype=np.int64)}
            if channel_names is not None and len(channel_names) == arr.shape[0]:
                table["channel_name"] = np.array([str(channel_names[i])] * n, dtype=np.str_)
            table.update(measured)
            tables.append(table)
        return arr, concat_tables(tables)
    if lab.shape[0] == 1:
        suffixes = column_suffixes(arr.shape[0], channel_names)
        return arr, object_table(lab[0], list(arr), suffixes, pixel_size)
    raise ValueError(
        f"labels have {lab.shape[0]} slices for a stack of {arr.shape[0]}; the labels must come from a "
        f"step that stacked the same images, or be a single label image"
    )


@register(category="Measurement", special_outputs=("cell_counts",),
          keywords=("count", "nuclei", "cells", "number", "summary", "segment"))
def count_nuclei(
    stack: np.ndarray,
    *,
    sigma: Sigma = 1.5,
    threshold_method: ThresholdMethod = "otsu",
    threshold_factor: Factor = 1.0,
    block_size: BlockSize = 101,
    min_distance: MinDistance = 5,
    min_area: Area = 30,
    max_area: Area = 0,
    clear_border: bool = False,
    keep_image: bool = False,
    pixel_size: float | None = None,
) -> tuple[np.ndarray, Table]:
    """Segment and count nuclei per slice; the labels replace the image unless ``keep_image``.

    Segmentation as in ``segment_nuclei`` (touching nuclei are split). The
    ``cell_counts`` output has one row per slice: ``slice``, ``count``,
    ``mean_area`` (pixels; ``mean_area_um2`` with a pixel size) and
    ``mean_intensity`` (mean over nuclei of their mean intensity).

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` nuclear stain (e.g. all sites of one well: ``variable_components=[SITE]``).
    sigma : float
        Gaussian smoothing in pixels before thresholding.
    threshold_method : {"otsu", "li", "triangle", "local"}
        Threshold method (see ``segment_nuclei``).
    threshold_factor : float
        Multiplies the threshold: > 1 is stricter.
    block_size : int
        Neighbourhood size in pixels for ``"local"``.
    min_distance : int
        Smallest distance in pixels between the centres of two touching nuclei that are split.
    min_area : int
        Objects smaller than this (pixels) are not counted.
    max_area : int
        Objects larger than this (pixels) are not counted; 0: no limit.
    clear_border : bool
        Do not count nuclei touching the image border.
    keep_image : bool
        Return the input stack unchanged instead of the labels (count only).
    pixel_size : float, optional
        µm per pixel (filled by the engine).

    Returns
    -------
    labels : ndarray
        ``(N, Y, X)`` int32 label stack (the input stack with ``keep_image``).
    cell_counts : dict of str to ndarray
        One row per slice (special output ``cell_counts``).

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.draw import disk
    >>> rng = np.random.default_rng(1)
    >>> image = np.full((2, 96, 96), 120.0)
    >>> for centre in [(20, 20), (20, 70), (70, 30), (70, 44)]:
    ...     image[0][disk(centre, 8)] = 1000
    >>> image[1][disk((48, 48), 10)] = 900
    >>> labels, counts = count_nuclei(rng.poisson(image).astype(np.uint16))
    >>> counts["slice"].tolist(), counts["count"].tolist()
    ([0, 1], [4, 1])
    """
    arr = as_stack(stack)
    labels = segment_nuclei(arr, sigma=sigma, threshold_method=threshold_method,
                            threshold_factor=threshold_factor, block_size=block_size,
                            min_distance=min_distance, min_area=min_area, max_area=max_area,
                            clear_border=clear_border)
    rows = []
    for i, (image, slice_labels) in enumerate(zip(arr, labels)):
        table = shape_table(slice_labels, pixel_size)
        table.update(intensity_columns(image, slice_labels, table["label"]))
        rows.append({"slice": np.array([i], dtype=np.int64), **summary_row(table)})
    return (arr if keep_image else labels), concat_tables(rows)


@register(category="Measurement", special_outputs=("cell_table", "cell_summary"),
          keywords=("measure", "segment", "cells", "nuclei", "features", "intensity", "table", "count"))
def segment_and_measure(
    stack: np.ndarray,
    *,
    nuclei_channel: int = 0,
    cytoplasm_channel: int | None = None,
    sigma: Sigma = 1.5,
    threshold_method: ThresholdMethod = "otsu",
    threshold_factor: Factor = 1.0,
    min_distance: MinDistance = 5,
    min_area: Area = 30,
    clear_border: bool = False,
    cell_threshold_method: ThresholdMethod = "otsu",
    cell_threshold_factor: Factor = 1.0,
    channel_names: Sequence[str] | None = None,
    pixel_size: float | None = None,
) -> tuple[np.ndarray, Table, Table]:
    """Segment the nuclei (or cells) of one field and measure every channel in each object.

    Give the step the channels of one field (``variable_components=[CHANNEL]``). Nuclei
    are segmented in ``nuclei_channel``; with a ``cytoplasm_channel`` they are grown
    into cells (as in ``segment_cells``) and the cells are measured, with the area of
    their nucleus in ``nucleus_area``.

    Parameters
    ----------
    stack : ndarray
        ``(C, Y, X)`` channels of one field.
    nuclei_channel : int
        Position of the nuclear stain in the stack.
    cytoplasm_channel : int, optional
        Position of a cytoplasm stain; ``None`` measures the nuclei themselves.
    sigma : float
        Gaussian smoothing in pixels before thresholding the nuclei.
    threshold_method : {"otsu", "li", "triangle", "local"}
        Nucleus threshold method.
    threshold_factor : float
        Multiplies the nucleus threshold: > 1 is stricter.
    min_distance : int
        Smallest distance in pixels between the centres of two touching nuclei that are split.
    min_area : int
        Nuclei smaller than this (pixels) are removed.
    clear_border : bool
        Remove nuclei touching the image border.
    cell_threshold_method : {"otsu", "li", "triangle", "local"}
        Cytoplasm threshold method (with ``cytoplasm_channel``).
    cell_threshold_factor : float
        Multiplies the cytoplasm threshold.
    channel_names : tuple of str, optional
        Channel of each slice (filled by the engine); names the intensity columns.
    pixel_size : float, optional
        µm per pixel (filled by the engine).

    Returns
    -------
    labels : ndarray
        ``(1, Y, X)`` int32 labels of the measured objects.
    cell_table : dict of str to ndarray
        One row per object: shape and ``mean_intensity_<channel>``, ``integrated_intensity_<channel>``,
        ``max_intensity_<channel>`` for every channel (special output ``cell_table``).
    cell_summary : dict of str to ndarray
        One row: ``count``, ``mean_area`` and the mean of each ``mean_intensity_<channel>``
        (special output ``cell_summary``).

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.draw import disk
    >>> dapi = np.full((64, 64), 100.0)
    >>> gfp = np.full((64, 64), 50.0)
    >>> for centre, level in [((20, 20), 300), ((44, 40), 900)]:
    ...     dapi[disk(centre, 7)] = 1000
    ...     gfp[disk(centre, 7)] = level
    >>> stack = np.stack([dapi, gfp]).astype(np.uint16)
    >>> labels, table, summary = segment_and_measure(stack, channel_names=("DAPI", "GFP"))
    >>> table["mean_intensity_GFP"].round().tolist(), summary["count"].tolist()
    ([300.0, 900.0], [2])
    """
    arr = as_stack(stack)
    nuc_i = channel_index(nuclei_channel, arr.shape[0], "nuclei_channel")
    options = NucleiOptions(sigma, threshold_method, threshold_factor, 101, True, min_distance, min_area, 0,
                            clear_border, True)
    nuclei = segment_nuclei_2d(arr[nuc_i], options)
    objects = nuclei
    if cytoplasm_channel is not None:
        cyto_i = channel_index(cytoplasm_channel, arr.shape[0], "cytoplasm_channel")
        objects = propagate_cells(nuclei, arr[cyto_i], sigma=2.0, method=cell_threshold_method,
                                  factor=cell_threshold_factor, block_size=101, compactness=0.01)
    table = object_table(objects, list(arr), column_suffixes(arr.shape[0], channel_names), pixel_size)
    if cytoplasm_channel is not None:
        table["nucleus_area"] = np.bincount(nuclei.ravel(), minlength=int(objects.max()) + 1)[table["label"]]
    return objects[np.newaxis].astype(np.int32), table, summary_row(table)
