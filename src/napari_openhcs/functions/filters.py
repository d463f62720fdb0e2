"""Smoothing, sharpening and local contrast enhancement, applied slice by slice.

Dtype rule: :func:`gaussian_blur`, :func:`median_filter` and :func:`unsharp_mask`
keep the input dtype (integer results are rounded and clipped to the dtype's range).
:func:`clahe` is a normalization: float32 in [0, 1], or the input dtype scaled to its
full range with ``output_dtype="same"``.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np

from ._lazy import LazyModule
from ._slicewise import OutputDtype, as_stack, from_unit_range, map_slices, restore_dtype, to_float
from .registry import register

ndi = LazyModule("scipy.ndimage")

Sigma = Annotated[float, {"min": 0.0, "max": 100.0, "step": 0.5, "limits": (0.0, None)}]


@register(category="Filters", keywords=("smooth", "blur", "denoise", "gaussian"))
def gaussian_blur(stack: np.ndarray, *, sigma: Sigma = 2.0) -> np.ndarray:
    """Smooth each slice with a Gaussian kernel.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.
    sigma : float
        Standard deviation of the kernel in pixels (0 returns the input unchanged).

    Returns
    -------
    ndarray
        ``(N, Y, X)`` smoothed stack of the input dtype.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> stack = rng.poisson(100, size=(2, 64, 64)).astype(np.uint16)
    >>> out = gaussian_blur(stack, sigma=2)
    >>> out.dtype, bool(out.std() < stack.std())
    (dtype('uint16'), True)
    """
    arr = as_stack(stack)
    if sigma <= 0:
        return arr.copy()
    out = ndi.gaussian_filter(to_float(arr), sigma=(0, sigma, sigma), mode="nearest")
    return restore_dtype(out, arr.dtype)


@register(category="Filters", keywords=("denoise", "salt", "pepper", "hot pixel", "median"))
def median_filter(stack: np.ndarray, *, radius: Annotated[int, {"min": 1, "max": 50}] = 2) -> np.ndarray:
    """Replace each pixel by the median of a disk of ``radius`` around it, slice by slice.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.
    radius : int
        Disk radius in pixels.

    Returns
    -------
    ndarray
        ``(N, Y, X)`` filtered stack of the input dtype.

    Examples
    --------
    >>> import numpy as np
    >>> stack = np.full((1, 32, 32), 100, dtype=np.uint16)
    >>> stack[0, 10, 10] = 60000  # a hot pixel
    >>> int(median_filter(stack, radius=1)[0, 10, 10])
    100
    """
    from skimage.morphology import disk

    arr = as_stack(stack)
    footprint = disk(int(radius)).astype(bool)
    return map_slices(ndi.median_filter, arr, footprint=footprint, mode="nearest")


@register(category="Filters", keywords=("sharpen", "enhance", "edges"))
def unsharp_mask(
    stack: np.ndarray,
    *,
    sigma: Sigma = 2.0,
    amount: Annotated[float, {"min": 0.0, "max": 10.0, "step": 0.1}] = 1.0,
) -> np.ndarray:
    """Sharpen each slice: ``image + amount * (image - gaussian(image, sigma))``.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.
    sigma : float
        Blur used to find the detail, in pixels.
    amount : float
        How much detail is added back.

    Returns
    -------
    ndarray
        ``(N, Y, X)`` sharpened stack of the input dtype (clipped to its range).

    Examples
    --------
    >>> import numpy as np
    >>> stack = np.zeros((1, 32, 32), dtype=np.uint16)
    >>> stack[0, :, 16:] = 1000
    >>> out = unsharp_mask(stack, sigma=2, amount=1)
    >>> bool(out[0, 5, 16] > 1000), out.dtype
    (True, dtype('uint16'))
    """
    arr = as_stack(stack)
    img = to_float(arr)
    blurred = ndi.gaussian_filter(img, sigma=(0, sigma, sigma), mode="nearest")
    return restore_dtype(img + amount * (img - blurred), arr.dtype)


@register(category="Exposure", keywords=("contrast", "equalize", "adaptive", "histogram", "local"))
def clahe(
    stack: np.ndarray,
    *,
    kernel_size: Annotated[int, {"min": 0, "max": 1024}] = 0,
    clip_limit: Annotated[float, {"min": 0.0, "max": 1.0, "step": 0.005}] = 0.01,
    nbins: Annotated[int, {"min": 16, "max": 65536}] = 256,
    output_dtype: OutputDtype = "float32",
) -> np.ndarray:
    """Contrast-limited adaptive histogram equalization (CLAHE), slice by slice.

    Each slice is first stretched to [0, 1] between its minimum and maximum, then
    equalized in tiles (:func:`skimage.exposure.equalize_adapthist`).

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.
    kernel_size : int
        Tile size in pixels; 0 uses 1/8 of the image size.
    clip_limit : float
        Contrast limit (0-1); higher gives more contrast.
    nbins : int
        Number of histogram bins.
    output_dtype : {"float32", "same"}
        ``"float32"``: float32 in [0, 1]; ``"same"``: the input dtype, [0, 1] scaled
        to its full range for integer dtypes.

    Returns
    -------
    ndarray
        ``(N, Y, X)`` equalized stack.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> stack = rng.normal(1000, 50, size=(2, 64, 64)).astype(np.uint16)
    >>> out = clahe(stack)
    >>> out.shape, out.dtype, float(out.max()) <= 1.0
    ((2, 64, 64), dtype('float32'), True)
    """
    from skimage.exposure import equalize_adapthist

    arr = as_stack(stack)

    def one(plane: np.ndarray) -> np.ndarray:
        img = plane.astype(np.float64)
        lo, hi = float(img.min()), float(img.max())
        if hi <= lo:
            return np.zeros(plane.shape, np.float32)
        unit = (img - lo) / (hi - lo)
        return equalize_adapthist(unit, kernel_size=kernel_size or None, clip_limit=clip_limit,
                                  nbins=nbins).astype(np.float32)

    return from_unit_range(map_slices(one, arr), arr.dtype, output_dtype)
