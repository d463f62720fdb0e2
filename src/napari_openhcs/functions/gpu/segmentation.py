"""GPU twins of :func:`~napari_openhcs.functions.segmentation.segment_nuclei` and ``detect_nuclei``.

The pipeline of :mod:`.._nuclei` (smooth, threshold, fill holes, size filter,
optional split, border clearing, sequential labels) written against ``xp``/``ndi``:
Gaussian smoothing, the Otsu threshold (on an ``xp`` histogram, as
:func:`skimage.filters.threshold_otsu` computes it), the local Gaussian threshold,
hole filling, connected-component labelling and the size filter run on the
device. Two parts have no CuPy counterpart and run on the host: the Li and
triangle thresholds (one number from the image) and, with
``split_touching=True``, the watershed that splits touching nuclei (the CPU
module's :func:`~.._nuclei.split_objects` on the mask).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from .._nuclei import (
    MIN_CONTRAST,
    Area,
    BlockSize,
    Factor,
    MinDistance,
    NucleiOptions,
    Sigma,
    ThresholdMethod,
    split_objects,
)
from .._xp import as_stack, asnumpy, get_modules
from ..registry import register
from ..segmentation import _KEYWORDS


def otsu_threshold(xp: ModuleType, image: Any, nbins: int = 256) -> np.floating[Any]:
    """Otsu's threshold of a float image, computed as :func:`skimage.filters.threshold_otsu` does."""
    counts, edges = xp.histogram(image.reshape(-1), bins=nbins)
    centers = (edges[:-1] + edges[1:]) / 2.0
    counts = counts.astype(np.float32)
    weight1 = xp.cumsum(counts)
    weight2 = xp.cumsum(counts[::-1])[::-1]
    mean1 = xp.cumsum(counts * centers) / weight1
    mean2 = (xp.cumsum((counts * centers)[::-1]) / weight2[::-1])[::-1]
    variance12 = weight1[:-1] * weight2[1:] * (mean1[:-1] - mean2[1:]) ** 2
    idx = int(xp.argmax(variance12))
    return np.asarray(centers[idx : idx + 1].tolist(), dtype=centers.dtype)[0]


def has_objects(xp: ModuleType, image: Any) -> bool:
    """Whether the foreground is clearly brighter than the background (see :func:`.._nuclei.has_objects`)."""
    if float(image.max()) <= float(image.min()):
        return False
    above = image > otsu_threshold(xp, image)
    bright, dim = image[above], image[~above]
    if not bright.size or not dim.size:
        return False
    return float(bright.mean() - dim.mean()) >= MIN_CONTRAST * max(float(dim.std()), 1e-12)


def foreground(xp: ModuleType, ndi: ModuleType, image: Any, method: ThresholdMethod, factor: float,
               block_size: int) -> Any:
    """Threshold a smoothed float32 image into a mask (see :func:`.._nuclei.foreground`)."""
    if not has_objects(xp, image):
        return xp.zeros(image.shape, bool)
    if method == "local":
        size = max(3, int(block_size) | 1)
        local = ndi.gaussian_filter(image, ((size - 1) / 6.0,) * 2, mode="reflect", cval=0)
        floor = 0.5 * otsu_threshold(xp, image)
        return image > xp.maximum(local * factor, floor)
    if method == "otsu":
        return image > otsu_threshold(xp, image) * factor
    from skimage import filters

    func = {"li": filters.threshold_li, "triangle": filters.threshold_triangle}[method]
    return image > func(asnumpy(image)) * factor


def label_mask(xp: ModuleType, ndi: ModuleType, mask: Any) -> Any:
    """Label connected components (4-connectivity), numbered in raster order of first pixel."""
    labels, _ = ndi.label(mask)
    labels = labels.astype(np.int32)
    if xp is np:  # scipy already numbers in raster order
        return labels
    ids, first = xp.unique(labels.ravel(), return_index=True)
    keep = ids != 0
    ids, first = ids[keep], first[keep]
    lut = xp.zeros(int(labels.max()) + 1, dtype=np.int32)
    lut[ids[xp.argsort(first)]] = xp.arange(1, ids.size + 1, dtype=np.int32)
    return lut[labels]


def filter_sizes(xp: ModuleType, labels: Any, min_area: int, max_area: int) -> Any:
    """Remove objects smaller than ``min_area`` or larger than ``max_area`` (0: no limit)."""
    areas = xp.bincount(labels.ravel())
    bad = areas < min_area
    if max_area:
        bad |= areas > max_area
    bad[0] = False
    if bool(bad.any()):
        labels = xp.where(bad[labels], 0, labels)
    return labels


def clear_border(xp: ModuleType, labels: Any) -> Any:
    """Set every object with a pixel on the image border to 0."""
    edge = xp.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    ids = xp.unique(edge)
    ids = ids[ids != 0]
    if ids.size == 0:
        return labels
    return xp.where(xp.isin(labels, ids), 0, labels)


def relabel(xp: ModuleType, labels: Any) -> Any:
    """Renumber labels 1..n in increasing order of their values, as int32."""
    labels = labels.astype(np.int32)
    ids = xp.unique(labels)
    ids = ids[ids != 0]
    lut = xp.zeros(int(labels.max()) + 1 if labels.size else 1, dtype=np.int32)
    lut[ids] = xp.arange(1, ids.size + 1, dtype=np.int32)
    return lut[labels]


def segment_nuclei_2d(image: Any, options: NucleiOptions) -> Any:
    """Segment the nuclei of one 2-D image into an int32 label image of the image's module."""
    xp, ndi = get_modules(image)
    img = xp.asarray(image, dtype=np.float32)
    if options.sigma > 0:
        img = ndi.gaussian_filter(img, options.sigma, mode="nearest")
    mask = foreground(xp, ndi, img, options.threshold_method, options.threshold_factor, options.block_size)
    if options.fill_holes:
        mask = ndi.binary_fill_holes(mask)
    if options.min_area > 1:
        mask = filter_sizes(xp, label_mask(xp, ndi, mask), options.min_area, 0) > 0
    if options.split_touching:
        labels = xp.asarray(split_objects(asnumpy(mask), options.min_distance))
    else:
        labels = label_mask(xp, ndi, mask)
    labels = filter_sizes(xp, labels, options.min_area, options.max_area)
    if options.clear_border:
        labels = clear_border(xp, labels)
    return relabel(xp, labels)


@register(name="segment_nuclei", category="Segmentation", memory_type="cupy", keywords=_KEYWORDS)
def segment_nuclei(
    stack: Any,
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
) -> Any:
    """Segment nuclei in each slice of a nuclear stain into a label image (GPU twin).

    See :func:`napari_openhcs.functions.segmentation.segment_nuclei`; the module
    notes say which parts run on the host.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` nuclear stain, any numeric dtype.
    sigma : float
        Gaussian smoothing in pixels before thresholding (0: none).
    threshold_method : {"otsu", "li", "triangle", "local"}
        Global Otsu/Li/triangle threshold, or a local Gaussian-weighted threshold.
    threshold_factor : float
        Multiplies the threshold: > 1 is stricter.
    block_size : int
        Neighbourhood size in pixels for ``"local"``.
    split_touching : bool
        Split touching nuclei (watershed, on the host).
    min_distance : int
        Smallest distance in pixels between the centres of two split nuclei.
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
    ndarray
        ``(N, Y, X)`` int32 label stack: 0 background, 1..n the nuclei of each slice.
    """
    options = NucleiOptions(sigma, threshold_method, threshold_factor, block_size, split_touching,
                            min_distance, min_area, max_area, clear_border, fill_holes)
    xp, _ = get_modules(stack)
    arr = as_stack(xp, stack)
    return xp.stack([segment_nuclei_2d(plane, options) for plane in arr]).astype(np.int32)


@register(name="detect_nuclei", category="Segmentation", memory_type="cupy", special_outputs=("labels",),
          keywords=_KEYWORDS + ("measure",))
def detect_nuclei(
    stack: Any,
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
) -> tuple[Any, Any]:
    """Segment nuclei, keep the image, and hand the labels on as the ``labels`` output (GPU twin).

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` nuclear stain.
    sigma : float
        Gaussian smoothing in pixels before thresholding (0: none).
    threshold_method : {"otsu", "li", "triangle", "local"}
        Global Otsu/Li/triangle threshold, or a local Gaussian-weighted threshold.
    threshold_factor : float
        Multiplies the threshold: > 1 is stricter.
    block_size : int
        Neighbourhood size in pixels for ``"local"``.
    split_touching : bool
        Split touching nuclei (watershed, on the host).
    min_distance : int
        Smallest distance in pixels between the centres of two split nuclei.
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
    """
    labels = segment_nuclei(stack, sigma=sigma, threshold_method=threshold_method,
                            threshold_factor=threshold_factor, block_size=block_size,
                            split_touching=split_touching, min_distance=min_distance, min_area=min_area,
                            max_area=max_area, clear_border=clear_border, fill_holes=fill_holes)
    xp, _ = get_modules(stack)
    return as_stack(xp, stack), labels
