"""Nucleus and cell segmentation into label images.

How labels flow through a pipeline:

- :func:`segment_nuclei` replaces each slice by its label image: the step's output
  *is* the labels (int32; 0 is background, objects 1..n per slice).
- :func:`detect_nuclei` leaves the image unchanged and hands the labels on as the
  special output ``labels``, for a later step such as
  :func:`~napari_openhcs.functions.measurement.measure_objects` (special input
  ``labels``) that measures intensities inside them.
- :func:`segment_cells` takes the channels of one field (``variable_components=[CHANNEL]``),
  segments the nuclei in one channel and grows them into cells in another.

Dtype rule: label images are int32 (the output writer keeps signed integer images
as labels in the pyramid).
"""

from __future__ import annotations

from typing import Annotated

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
from ._slicewise import as_stack
from .registry import register

_KEYWORDS = ("nuclei", "nucleus", "dapi", "hoechst", "label", "watershed", "objects", "count")


@register(category="Segmentation", keywords=_KEYWORDS)
def segment_nuclei(
    stack: np.ndarray,
    *,
    sigma: Sigma = 1.5,
    threshold_method: ThresholdMethod = "otsu",
    threshold_factor: Factor = 1.0,
    block_size: BlockSize = 101,
    split_touching: bool = True,
    min_distance: MinDistance = 5,
    min_area: Area = 30,
    max_area: Area = 0,
    clear_border: bool = False,
    fill_holes: bool = True,
) -> np.ndarray:
    """Segment nuclei in each slice of a nuclear stain into a label image.

    Smooth, threshold, fill holes, split touching nuclei (watershed on the distance
    transform seeded by its peaks), drop objects outside the size range, optionally
    drop objects touching the image border.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` nuclear stain (e.g. DAPI/Hoechst), any numeric dtype.
    sigma : float
        Gaussian smoothing in pixels before thresholding (0: none).
    threshold_method : {"otsu", "li", "triangle", "local"}
        Global Otsu/Li/triangle threshold, or a local (Gaussian-weighted mean of a
        ``block_size`` neighbourhood) threshold for uneven backgrounds.
    threshold_factor : float
        Multiplies the threshold: > 1 is stricter (fewer, smaller objects).
    block_size : int
        Neighbourhood size in pixels for ``"local"`` (odd; about 3 nucleus diameters).
    split_touching : bool
        Split touching nuclei; otherwise each connected blob is one object.
    min_distance : int
        Smallest distance in pixels between the centres of two touching nuclei that
        are split apart (about half the radius of the smallest nucleus).
    min_area : int
        Objects smaller than this (pixels) are removed (debris, noise).
    max_area : int
        Objects larger than this (pixels) are removed (clumps); 0: no limit.
    clear_border : bool
        Remove objects that touch the image border (cut-off nuclei).
    fill_holes : bool
        Fill holes inside objects (dim nucleoli).

    Returns
    -------
    ndarray
        ``(N, Y, X)`` int32 label stack: 0 background, 1..n the nuclei of each slice.

    Notes
    -----
    A slice whose bright part (above Otsu's threshold, after smoothing) is less than
    5 standard deviations of the background above the background's mean has no
    objects: an empty well gives 0 nuclei rather than blobs of noise.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.draw import disk
    >>> rng = np.random.default_rng(0)
    >>> image = np.full((96, 96), 100.0)
    >>> for centre in [(20, 20), (20, 70), (70, 30), (70, 44)]:  # the last two touch
    ...     image[disk(centre, 8, shape=image.shape)] = 1000
    >>> stack = rng.poisson(image)[np.newaxis].astype(np.uint16)
    >>> labels = segment_nuclei(stack)
    >>> labels.dtype, int(labels.max())
    (dtype('int32'), 4)
    """
    options = NucleiOptions(sigma, threshold_method, threshold_factor, block_size, split_touching,
                            min_distance, min_area, max_area, clear_border, fill_holes)
    arr = as_stack(stack)
    return np.stack([segment_nuclei_2d(plane, options) for plane in arr]).astype(np.int32)


@register(category="Segmentation", special_outputs=("labels",), keywords=_KEYWORDS + ("measure",))
def detect_nuclei(
    stack: np.ndarray,
    *,
    sigma: Sigma = 1.5,
    threshold_method: ThresholdMethod = "otsu",
    threshold_factor: Factor = 1.0,
    block_size: BlockSize = 101,
    split_touching: bool = True,
    min_distance: MinDistance = 5,
    min_area: Area = 30,
    max_area: Area = 0,
    clear_border: bool = False,
    fill_holes: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Segment nuclei, keep the image, and hand the labels on as the ``labels`` output.

    The same algorithm and parameters as :func:`segment_nuclei`; use this one when a
    later step (e.g. ``measure_objects``) must measure the image inside the nuclei.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` nuclear stain.
    sigma : float
        Gaussian smoothing in pixels before thresholding (0: none).
    threshold_method : {"otsu", "li", "triangle", "local"}
        Global Otsu/Li/triangle threshold, or a local (Gaussian-weighted mean of a
        ``block_size`` neighbourhood) threshold for uneven backgrounds.
    threshold_factor : float
        Multiplies the threshold: > 1 is stricter (fewer, smaller objects).
    block_size : int
        Neighbourhood size in pixels for ``"local"`` (odd; about 3 nucleus diameters).
    split_touching : bool
        Split touching nuclei; otherwise each connected blob is one object.
    min_distance : int
        Smallest distance in pixels between the centres of two touching nuclei that
        are split apart (about half the radius of the smallest nucleus).
    min_area : int
        Objects smaller than this (pixels) are removed.
    max_area : int
        Objects larger than this (pixels) are removed; 0: no limit.
    clear_border : bool
        Remove objects that touch the image border.
    fill_holes : bool
        Fill holes inside objects.

    Returns
    -------
    stack : ndarray
        The input stack, unchanged.
    labels : ndarray
        ``(N, Y, X)`` int32 label stack (special output ``labels``).

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.draw import disk
    >>> image = np.full((64, 64), 100, dtype=np.uint16)
    >>> image[disk((32, 32), 9)] = 900
    >>> out, labels = detect_nuclei(image[np.newaxis])
    >>> out.dtype, labels.dtype, int(labels.max())
    (dtype('uint16'), dtype('int32'), 1)
    """
    labels = segment_nuclei(stack, sigma=sigma, threshold_method=threshold_method,
                            threshold_factor=threshold_factor, block_size=block_size,
                            split_touching=split_touching, min_distance=min_distance, min_area=min_area,
                            max_area=max_area, clear_border=clear_border, fill_holes=fill_holes)
    return as_stack(stack), labels


def channel_index(index: int, n: int, what: str) -> int:
    """Validate a channel position within a stack of ``n`` slices (negative counts from the end)."""
    if not -n <= index < n:
        raise ValueError(
            f"{what}={index} but the stack has {n} slice(s); stack the channels of one field "
            f"(variable_components=[CHANNEL]) and give the channel's position in that stack (0-based)"
        )
    return index % n


@register(category="Segmentation", keywords=("cells", "cytoplasm", "propagation", "watershed", "label"))
def segment_cells(
    stack: np.ndarray,
    *,
    nuclei_channel: int = 0,
    cytoplasm_channel: int = 1,
    sigma: Sigma = 1.5,
    threshold_method: ThresholdMethod = "otsu",
    threshold_factor: Factor = 1.0,
    min_distance: MinDistance = 5,
    min_area: Area = 30,
    clear_border: bool = False,
    cell_sigma: Sigma = 2.0,
    cell_threshold_method: ThresholdMethod = "otsu",
    cell_threshold_factor: Factor = 1.0,
    block_size: BlockSize = 101,
    compactness: Annotated[float, {"min": 0.0, "max": 10.0, "step": 0.005}] = 0.01,
) -> np.ndarray:
    """Segment cells: nuclei in one channel, grown into the cytoplasm stain of another.

    Nuclei are found as in :func:`segment_nuclei`; each is then grown by a watershed
    on the (smoothed) cytoplasm intensity, within the thresholded cytoplasm, so that
    neighbouring cells meet where the stain is dimmest. A cell keeps the label of its
    nucleus; stained areas without a nucleus are left out.

    Parameters
    ----------
    stack : ndarray
        ``(C, Y, X)``: the channels of one field, in channel order (use
        ``variable_components=[CHANNEL]``).
    nuclei_channel : int
        Position of the nuclear stain in the stack.
    cytoplasm_channel : int
        Position of the cytoplasm (or whole-cell) stain in the stack.
    sigma : float
        Gaussian smoothing in pixels before thresholding (0: none).
    threshold_method : {"otsu", "li", "triangle", "local"}
        Global Otsu/Li/triangle threshold, or a local (Gaussian-weighted mean of a
        ``block_size`` neighbourhood) threshold for uneven backgrounds.
    threshold_factor : float
        Multiplies the threshold: > 1 is stricter (fewer, smaller objects).
    min_distance : int
        Smallest distance in pixels between the centres of two touching nuclei that
        are split apart.
    min_area : int
        Nuclei smaller than this (pixels) are removed.
    clear_border : bool
        Remove nuclei (and so their cells) that touch the image border.
    cell_sigma : float
        Gaussian smoothing of the cytoplasm stain in pixels.
    cell_threshold_method : {"otsu", "li", "triangle", "local"}
        Threshold separating cells from background in the cytoplasm stain.
    cell_threshold_factor : float
        Multiplies the cell threshold: > 1 gives tighter cells.
    block_size : int
        Neighbourhood size for ``"local"`` thresholds (nuclei and cells).
    compactness : float
        Weight of the distance from the nucleus against the stain intensity (scaled to
        [0, 1]). 0 follows the stain only, and a nucleus that reaches a shared bright
        region first takes all of it; larger values split shared cytoplasm more evenly
        and make cells rounder.

    Returns
    -------
    ndarray
        ``(1, Y, X)`` int32 cell labels (cell ``i`` contains nucleus ``i``).

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.draw import disk
    >>> nuclei = np.full((80, 80), 100.0)
    >>> cytoplasm = np.full((80, 80), 100.0)
    >>> for centre in [(25, 25), (25, 55), (60, 40)]:
    ...     cytoplasm[disk(centre, 14, shape=(80, 80))] = 600
    ...     nuclei[disk(centre, 6)] = 1200
    >>> stack = np.stack([nuclei, cytoplasm]).astype(np.uint16)
    >>> cells = segment_cells(stack)
    >>> cells.shape, cells.dtype, int(cells.max()), int((cells == 1).sum()) > 400
    ((1, 80, 80), dtype('int32'), 3, True)
    """
    arr = as_stack(stack)
    nuc_i = channel_index(nuclei_channel, arr.shape[0], "nuclei_channel")
    cyto_i = channel_index(cytoplasm_channel, arr.shape[0], "cytoplasm_channel")
    options = NucleiOptions(sigma, threshold_method, threshold_factor, block_size, True, min_distance,
                            min_area, 0, clear_border, True)
    nuclei = segment_nuclei_2d(arr[nuc_i], options)
    cells = propagate_cells(nuclei, arr[cyto_i], sigma=cell_sigma, method=cell_threshold_method,
                            factor=cell_threshold_factor, block_size=block_size, compactness=compactness)
    return cells[np.newaxis].astype(np.int32)
