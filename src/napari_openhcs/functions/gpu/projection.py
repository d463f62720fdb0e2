"""GPU twins of :mod:`napari_openhcs.functions.projection` (every projection returns ``(1, Y, X)``)."""

from __future__ import annotations

from types import ModuleType
from typing import Annotated, Any

import numpy as np

from .._xp import as_stack, get_modules
from ..projection import Sigma
from ..registry import register


@register(name="max_projection", category="Projection", memory_type="cupy",
          keywords=("mip", "maximum", "z-stack", "project"))
def max_projection(stack: Any) -> Any:
    """Maximum-intensity projection (GPU twin; input dtype).

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.

    Returns
    -------
    ndarray
        ``(1, Y, X)`` image of the input dtype.
    """
    xp, _ = get_modules(stack)
    return as_stack(xp, stack).max(axis=0, keepdims=True)


@register(name="min_projection", category="Projection", memory_type="cupy",
          keywords=("minimum", "z-stack", "project"))
def min_projection(stack: Any) -> Any:
    """Minimum-intensity projection (GPU twin; input dtype).

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.

    Returns
    -------
    ndarray
        ``(1, Y, X)`` image of the input dtype.
    """
    xp, _ = get_modules(stack)
    return as_stack(xp, stack).min(axis=0, keepdims=True)


@register(name="mean_projection", category="Projection", memory_type="cupy",
          keywords=("average", "mean", "z-stack", "project"))
def mean_projection(stack: Any) -> Any:
    """Mean-intensity projection (GPU twin; float32).

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.

    Returns
    -------
    ndarray
        ``(1, Y, X)`` float32 image.
    """
    xp, _ = get_modules(stack)
    return as_stack(xp, stack).mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)


@register(name="sum_projection", category="Projection", memory_type="cupy",
          keywords=("sum", "total", "integrated", "z-stack", "project"))
def sum_projection(stack: Any) -> Any:
    """Sum projection (GPU twin; float32).

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.

    Returns
    -------
    ndarray
        ``(1, Y, X)`` float32 image.
    """
    xp, _ = get_modules(stack)
    return as_stack(xp, stack).sum(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)


@register(name="std_projection", category="Projection", memory_type="cupy",
          keywords=("standard deviation", "variance", "std", "z-stack", "project"))
def std_projection(stack: Any) -> Any:
    """Standard-deviation projection (GPU twin; float32).

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.

    Returns
    -------
    ndarray
        ``(1, Y, X)`` float32 image.
    """
    xp, _ = get_modules(stack)
    return as_stack(xp, stack).std(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)


def _laplacian(ndi: ModuleType, plane: Any, sigma: float) -> Any:
    img = plane.astype(np.float32)
    if sigma > 0:
        img = ndi.gaussian_filter(img, sigma, mode="nearest")
    return ndi.laplace(img, mode="nearest")


@register(name="best_focus_plane", category="Projection", memory_type="cupy",
          keywords=("focus", "autofocus", "sharpest", "z-stack", "laplacian"))
def best_focus_plane(stack: Any, *, sigma: Sigma = 1.0) -> Any:
    """Pick the sharpest plane: the one whose Laplacian has the largest variance (GPU twin).

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack (a z-stack of one site and channel).
    sigma : float
        Gaussian smoothing (pixels) before the Laplacian.

    Returns
    -------
    ndarray
        ``(1, Y, X)`` copy of the sharpest plane, input dtype.
    """
    xp, ndi = get_modules(stack)
    arr = as_stack(xp, stack)
    scores = xp.stack([_laplacian(ndi, p, sigma).var() for p in arr])
    best = int(np.argmax(np.asarray(scores.tolist(), dtype=np.float64)))
    return arr[best : best + 1].copy()


@register(name="best_focus_pixel", category="Projection", memory_type="cupy",
          keywords=("focus", "extended depth of field", "edf", "z-stack"))
def best_focus_pixel(
    stack: Any,
    *,
    window: Annotated[int, {"min": 3, "max": 255, "step": 2}] = 15,
    sigma: Sigma = 1.0,
) -> Any:
    """Extended-depth-of-field projection: each pixel from the plane that is sharpest there (GPU twin).

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
    """
    xp, ndi = get_modules(stack)
    arr = as_stack(xp, stack)
    if arr.shape[0] == 1:
        return arr.copy()
    size = max(1, int(window))
    energy = xp.stack([ndi.uniform_filter(_laplacian(ndi, p, sigma) ** 2, size, mode="nearest") for p in arr])
    index = xp.argmax(energy, axis=0)
    index = ndi.median_filter(index.astype(np.int32), size=size, mode="nearest")
    return xp.take_along_axis(arr, index[None], axis=0)
