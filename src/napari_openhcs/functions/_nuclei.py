"""The nucleus-segmentation algorithm, on one 2-D image, shared by the segmentation steps.

smooth -> threshold (Otsu, Li, triangle or local) -> fill holes -> split touching
nuclei by a watershed on the distance transform, seeded by its peaks -> size
filter -> optional border clearing -> sequential int32 labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np

from ._lazy import LazyModule

ndi = LazyModule("scipy.ndimage")

ThresholdMethod = Literal["otsu", "li", "triangle", "local"]
Sigma = Annotated[float, {"min": 0.0, "max": 20.0, "step": 0.5, "limits": (0.0, None)}]
Factor = Annotated[float, {"min": 0.1, "max": 10.0, "step": 0.05, "above": 0.0}]
BlockSize = Annotated[int, {"min": 3, "max": 1001, "step": 2}]
MinDistance = Annotated[int, {"min": 1, "max": 200, "limits": (1, None)}]
Area = Annotated[int, {"min": 0, "max": 10_000_000, "limits": (0, None)}]


@dataclass(frozen=True)
class NucleiOptions:
    """Parameters of :func:`segment_nuclei_2d` (documented on the public steps)."""

    sigma: float = 1.5
    threshold_method: ThresholdMethod = "otsu"
    threshold_factor: float = 1.0
    block_size: int = 101
    split_touching: bool = True
    min_distance: int = 5
    min_area: int = 30
    max_area: int = 0
    clear_border: bool = False
    fill_holes: bool = True

    def __post_init__(self) -> None:
        if self.threshold_method not in ("otsu", "li", "triangle", "local"):
            raise ValueError(
                f"threshold_method must be 'otsu', 'li', 'triangle' or 'local', not {self.threshold_method!r}"
            )
        if self.threshold_factor <= 0:
            raise ValueError(f"threshold_factor must be positive, got {self.threshold_factor}")
        if self.max_area and self.max_area < self.min_area:
            raise ValueError(f"max_area ({self.max_area}) is smaller than min_area ({self.min_area})")


def smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """Return ``image`` as float32, Gaussian-smoothed when ``sigma > 0``."""
    img = np.asarray(image, dtype=np.float32)
    return ndi.gaussian_filter(img, sigma, mode="nearest") if sigma > 0 else img


#: A field is empty when, split by Otsu's threshold, its bright part is less than this many
#: standard deviations of the dim part above the dim part's mean. Noise alone (any level,
#: with or without uneven illumination) scores 2.5-3.5; a field with stained nuclei 10 and more.
MIN_CONTRAST = 5.0


def has_objects(image: np.ndarray) -> bool:
    """Return whether a (smoothed) image has a foreground clearly brighter than its background.

    See :data:`MIN_CONTRAST`. This keeps empty fields (e.g. empty wells) from being
    split into noise by a threshold that always finds two classes.
    """
    from skimage.filters import threshold_otsu

    if float(image.max()) <= float(image.min()):
        return False
    t = threshold_otsu(image)
    bright, dim = image[image > t], image[image <= t]
    if not bright.size or not dim.size:
        return False
    return float(bright.mean() - dim.mean()) >= MIN_CONTRAST * max(float(dim.std()), 1e-12)


def foreground(image: np.ndarray, method: ThresholdMethod, factor: float = 1.0,
               block_size: int = 101) -> np.ndarray:
    """Threshold a (smoothed) image into a foreground mask (empty for an empty field).

    Global methods compare with ``factor`` x the threshold. ``"local"`` compares each
    pixel with ``factor`` x the Gaussian-weighted mean of its ``block_size``
    neighbourhood, but never with less than half the Otsu threshold, so that empty
    background is not split into noise. A field without contrast (see
    :func:`has_objects`) gives an empty mask.
    """
    from skimage import filters

    if not has_objects(image):
        return np.zeros(image.shape, bool)
    if method == "local":
        size = max(3, int(block_size) | 1)
        local = filters.threshold_local(image, size, method="gaussian")
        floor = 0.5 * filters.threshold_otsu(image)
        return image > np.maximum(local * factor, floor)
    methods: dict[str, Callable[..., Any]] = {
        "otsu": filters.threshold_otsu, "li": filters.threshold_li, "triangle": filters.threshold_triangle,
    }
    return image > methods[method](image) * factor


def split_objects(mask: np.ndarray, min_distance: int) -> np.ndarray:
    """Label ``mask``, splitting touching round objects at their necks.

    Seeds are the peaks of the (lightly smoothed) distance transform that are at
    least ``min_distance`` pixels apart, at least one per connected component; a
    watershed on the inverted distance grows them back to the mask.
    """
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    dist = ndi.distance_transform_edt(mask).astype(np.float32)
    dist = ndi.gaussian_filter(dist, 0.7) * mask
    comps, _ = ndi.label(mask)
    peaks = peak_local_max(dist, min_distance=max(1, int(min_distance)), labels=comps,
                           exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    return watershed(-dist, markers, mask=mask).astype(np.int32)


def filter_sizes(labels: np.ndarray, min_area: int, max_area: int) -> np.ndarray:
    """Remove objects smaller than ``min_area`` or larger than ``max_area`` (0: no limit)."""
    areas = np.bincount(labels.ravel())
    bad = areas < min_area
    if max_area:
        bad |= areas > max_area
    bad[0] = False
    if bad.any():
        labels = np.where(bad[labels], 0, labels)
    return labels


def relabel(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 1..n in order of first appearance, as int32."""
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(labels.astype(np.int32))[0].astype(np.int32)


def segment_nuclei_2d(image: np.ndarray, options: NucleiOptions) -> np.ndarray:
    """Segment the nuclei of one 2-D image into an int32 label image."""
    from skimage.segmentation import clear_border

    img = smooth(image, options.sigma)
    mask = foreground(img, options.threshold_method, options.threshold_factor, options.block_size)
    if options.fill_holes:
        mask = ndi.binary_fill_holes(mask)
    if options.min_area > 1:  # drop specks before the distance transform sees them
        comps, _ = ndi.label(mask)
        mask = filter_sizes(comps, options.min_area, 0) > 0
    if options.split_touching:
        labels = split_objects(mask, options.min_distance)
    else:
        labels = ndi.label(mask)[0].astype(np.int32)
    labels = filter_sizes(labels, options.min_area, options.max_area)
    if options.clear_border:
        labels = clear_border(labels)
    return relabel(labels)


def propagate_cells(nuclei: np.ndarray, cytoplasm: np.ndarray, *, sigma: float,
                    method: ThresholdMethod, factor: float, block_size: int,
                    compactness: float) -> np.ndarray:
    """Grow each nucleus into its cell: watershed on the cytoplasm intensity, seeded by the nuclei.

    The cell area is the thresholded cytoplasm plus the nuclei; a cell keeps the id
    of its nucleus; cytoplasm without a nucleus is left unlabelled. The intensity is
    scaled to [0, 1] (1st-99th percentile) so that ``compactness`` means the same on
    any image: it adds ``compactness`` x the distance (pixels) from the nucleus to the
    flooding cost. With 0, a nucleus that reaches a shared bright region first floods
    all of it (its neighbour keeps only its nucleus); 0.01 already gives each nucleus
    its share while still following dim gaps between cells.
    """
    from skimage.segmentation import watershed

    img = smooth(cytoplasm, sigma)
    mask = foreground(img, method, factor, block_size) | (nuclei > 0)
    lo, hi = np.percentile(img, [1, 99])
    unit = np.clip((img - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(img)
    return watershed(-unit, nuclei, mask=mask, compactness=compactness).astype(np.int32)
