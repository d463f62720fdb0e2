"""GPU twins of :mod:`napari_openhcs.functions.filters`: Gaussian, median, unsharp mask."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np

from .._xp import as_stack, get_modules, restore_dtype, to_float
from ..filters import Sigma
from ..registry import register


@register(name="gaussian_blur", category="Filters", memory_type="cupy",
          keywords=("smooth", "blur", "denoise", "gaussian"))
def gaussian_blur(stack: Any, *, sigma: Sigma = 2.0) -> Any:
    """Smooth each slice with a Gaussian kernel (GPU twin).

    See :func:`napari_openhcs.functions.filters.gaussian_blur`.

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
    """
    xp, ndi = get_modules(stack)
    arr = as_stack(xp, stack)
    if sigma <= 0:
        return arr.copy()
    out = ndi.gaussian_filter(to_float(xp, arr), sigma=(0, sigma, sigma), mode="nearest")
    return restore_dtype(xp, out, arr.dtype)


@register(name="median_filter", category="Filters", memory_type="cupy",
          keywords=("denoise", "salt", "pepper", "hot pixel", "median"))
def median_filter(stack: Any, *, radius: Annotated[int, {"min": 1, "max": 50}] = 2) -> Any:
    """Replace each pixel by the median of a disk of ``radius`` around it, slice by slice (GPU twin).

    See :func:`napari_openhcs.functions.filters.median_filter`. The whole stack is
    filtered in one call with a ``(1, d, d)`` footprint, which is the same as
    filtering each slice.

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
    """
    from skimage.morphology import disk

    xp, ndi = get_modules(stack)
    arr = as_stack(xp, stack)
    footprint = xp.asarray(disk(int(radius)).astype(bool)[np.newaxis])
    return ndi.median_filter(arr, footprint=footprint, mode="nearest")


@register(name="unsharp_mask", category="Filters", memory_type="cupy",
          keywords=("sharpen", "enhance", "edges"))
def unsharp_mask(
    stack: Any,
    *,
    sigma: Sigma = 2.0,
    amount: Annotated[float, {"min": 0.0, "max": 10.0, "step": 0.1}] = 1.0,
) -> Any:
    """Sharpen each slice: ``image + amount * (image - gaussian(image, sigma))`` (GPU twin).

    See :func:`napari_openhcs.functions.filters.unsharp_mask`.

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
    """
    xp, ndi = get_modules(stack)
    arr = as_stack(xp, stack)
    img = to_float(xp, arr)
    blurred = ndi.gaussian_filter(img, sigma=(0, sigma, sigma), mode="nearest")
    return restore_dtype(xp, img + amount * (img - blurred), arr.dtype)
