"""Projections: reduce a stack (usually a z-stack) to one image.

Use them in a step with ``variable_components=[Z_INDEX]`` so that the stack handed
over is the z-stack of one site and channel. Every projection returns a ``(1, Y, X)``
stack.

Dtype rule: projections that pick existing pixel values (maximum, minimum, best
focus) keep the input dtype; those that compute new values (mean, sum, standard
deviation) return float32.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np

from ._lazy import LazyModule
from ._slicewise import as_stack
from .registry import register

ndi = LazyModule("scipy.ndimage")

Sigma = Annotated[float, {"min": 0.0, "max": 20.0, "step": 0.5}]


@register(category="Projection", keywords=("mip", "maximum", "z-stack", "project"))
def max_projection(stack: np.ndarray) -> np.ndarray:
    """Maximum-intensity projection.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.

    Returns
    -------
    ndarray
        ``(1, Y, X)`` image of the input dtype.

    Examples
    --------
    >>> import numpy as np
    >>> stack = np.array([[[1, 5]], [[3, 2]]], dtype=np.uint16)
    >>> max_projection(stack)
    array([[[3, 5]]], dtype=uint16)
    """
    return as_stack(stack).max(axis=0, keepdims=True)


@register(category="Projection", keywords=("minimum", "z-stack", "project"))
def min_projection(stack: np.ndarray) -> np.ndarray:
    """Minimum-intensity projection.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.

    Returns
    -------
    ndarray
        ``(1, Y, X)`` image of the input dtype.

    Examples
    --------
    >>> import numpy as np
    >>> min_projection(np.array([[[1, 5]], [[3, 2]]], dtype=np.uint16))
    array([[[1, 2]]], dtype=uint16)
    """
    return as_stack(stack).min(axis=0, keepdims=True)


@register(category="Projection", keywords=("average", "mean", "z-stack", "project"))
def mean_projection(stack: np.ndarray) -> np.ndarray:
    """Mean-intensity projection.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.

    Returns
    -------
    ndarray
        ``(1, Y, X)`` float32 image.

    Examples
    --------
    >>> import numpy as np
    >>> mean_projection(np.array([[[1, 5]], [[3, 2]]], dtype=np.uint16))
    array([[[2. , 3.5]]], dtype=float32)
    """
    arr = as_stack(stack)
    if arr.shape[0] == 1:  # the mean of one value is the value: float32(x), as below, in one pass
        return arr.astype(np.float32)
    return arr.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)


@register(category="Projection", keywords=("sum", "total", "integrated", "z-stack", "project"))
def sum_projection(stack: np.ndarray) -> np.ndarray:
    """Sum projection (float32, so that sums of many 16-bit planes cannot overflow).

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.

    Returns
    -------
    ndarray
        ``(1, Y, X)`` float32 image.

    Examples
    --------
    >>> import numpy as np
    >>> sum_projection(np.full((3, 1, 2), 60000, dtype=np.uint16))
    array([[[180000., 180000.]]], dtype=float32)
    """
    return as_stack(stack).sum(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)


@register(category="Projection", keywords=("standard deviation", "variance", "std", "z-stack", "project"))
def std_projection(stack: np.ndarray) -> np.ndarray:
    """Standard-deviation projection (per-pixel spread across the stack).

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.

    Returns
    -------
    ndarray
        ``(1, Y, X)`` float32 image.

    Examples
    --------
    >>> import numpy as np
    >>> std_projection(np.array([[[1, 5]], [[3, 5]]], dtype=np.uint16))
    array([[[1., 0.]]], dtype=float32)
    """
    return as_stack(stack).std(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)


def _laplacian(plane: np.ndarray, sigma: float) -> np.ndarray:
    img = plane.astype(np.float32)
    if sigma > 0:
        img = ndi.gaussian_filter(img, sigma, mode="nearest")
    return ndi.laplace(img, mode="nearest")


def focus_scores(stack: np.ndarray, *, sigma: float = 1.0) -> np.ndarray:
    """Return the sharpness of each plane: the variance of its Laplacian.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.
    sigma : float
        Gaussian smoothing (pixels) before the Laplacian, to ignore pixel noise.

    Returns
    -------
    ndarray
        ``(N,)`` float64 scores; higher is sharper.
    """
    return np.array([float(_laplacian(p, sigma).var()) for p in as_stack(stack)])


@register(category="Projection", keywords=("focus", "autofocus", "sharpest", "z-stack", "laplacian"))
def best_focus_plane(stack: np.ndarray, *, sigma: Sigma = 1.0) -> np.ndarray:
    """Pick the sharpest plane: the one whose Laplacian has the largest variance.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack (a z-stack of one site and channel).
    sigma : float
        Gaussian smoothing (pixels) before the Laplacian, so that camera noise does
        not count as detail.

    Returns
    -------
    ndarray
        ``(1, Y, X)`` copy of the sharpest plane, input dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage as ndi
    >>> rng = np.random.default_rng(0)
    >>> sharp = np.zeros((64, 64)); sharp[::8, :] = 1000; sharp[:, ::8] = 1000
    >>> planes = [ndi.gaussian_filter(sharp, s) for s in (4, 2, 0.5, 2, 4)]
    >>> stack = (np.stack(planes) + rng.normal(100, 2, (5, 64, 64))).astype(np.uint16)
    >>> out = best_focus_plane(stack)
    >>> out.shape, bool(np.array_equal(out[0], stack[2]))
    ((1, 64, 64), True)
    """
    arr = as_stack(stack)
    best = int(np.argmax(focus_scores(arr, sigma=sigma)))
    return arr[best : best + 1].copy()


@register(category="Projection", keywords=("focus", "extended depth of field", "edf", "z-stack"))
def best_focus_pixel(
    stack: np.ndarray,
    *,
    window: Annotated[int, {"min": 3, "max": 255, "step": 2}] = 15,
    sigma: Sigma = 1.0,
) -> np.ndarray:
    """Extended-depth-of-field projection: each pixel from the plane that is sharpest there.

    Local sharpness is the Laplacian energy averaged over a ``window`` x ``window``
    neighbourhood; the plane index of the maximum is median-filtered over the same
    window so that neighbouring pixels come from consistent planes.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack (a z-stack of one site and channel).
    window : int
        Neighbourhood size in pixels over which sharpness is compared.
    sigma : float
        Gaussian smoothing (pixels) before the Laplacian.

    Returns
    -------
    ndarray
        ``(1, Y, X)`` image of the input dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage as ndi
    >>> rng = np.random.default_rng(0)
    >>> grid = np.zeros((64, 64)); grid[::6, :] = 1000; grid[:, ::6] = 1000
    >>> left = np.stack([grid, ndi.gaussian_filter(grid, 3)])    # plane 0 sharp
    >>> right = np.stack([ndi.gaussian_filter(grid, 3), grid])   # plane 1 sharp
    >>> stack = np.concatenate([left[:, :, :32], right[:, :, 32:]], axis=2)
    >>> stack = (stack + rng.normal(100, 2, stack.shape)).astype(np.uint16)
    >>> out = best_focus_pixel(stack, window=9)
    >>> out.shape, bool(out[0, :, :24].std() > 300 and out[0, :, 40:].std() > 300)
    ((1, 64, 64), True)
    """
    arr = as_stack(stack)
    if arr.shape[0] == 1:
        return arr.copy()
    size = max(1, int(window))
    energy = np.stack([ndi.uniform_filter(_laplacian(p, sigma) ** 2, size, mode="nearest") for p in arr])
    index = np.argmax(energy, axis=0)
    index = ndi.median_filter(index.astype(np.int32), size=size, mode="nearest")
    return np.take_along_axis(arr, index[np.newaxis], axis=0)
