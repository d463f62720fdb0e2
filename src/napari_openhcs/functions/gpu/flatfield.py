"""GPU twins of :mod:`napari_openhcs.functions.flatfield`: BaSiC estimate and illumination correction.

What costs time in BaSiC on full camera tiles is shrinking them (an anti-aliasing
Gaussian and a resampling of every tile) and correcting them; the low-rank/sparse
fit itself runs on tiles of at most ``working_size`` pixels. The twins shrink and
correct with ``xp``, and run the fit on the host with the CPU module's code: the
shrunk tiles are handed to its estimator, whose own resize is then the identity.
The resize reproduces :func:`skimage.transform.resize` (``order=1``, mode
``reflect``, clipped to the input range).
"""

from __future__ import annotations

from types import ModuleType
from typing import Annotated, Any

import numpy as np

from .._xp import asnumpy, get_modules
from ..flatfield import _estimate
from ..registry import register


def _resize(xp: ModuleType, ndi: ModuleType, image: Any, shape: tuple[int, int], anti_aliasing: bool) -> Any:
    """Bilinear resize of a float64 image as :func:`skimage.transform.resize` does it."""
    factors = np.divide(image.shape, shape)
    filtered = image
    if anti_aliasing:
        sigma = tuple(float(s) for s in np.maximum(0, (factors - 1) / 2))
        filtered = ndi.gaussian_filter(image, sigma, cval=0.0, mode="mirror")
    out = ndi.zoom(filtered, [1 / f for f in factors], order=1, mode="mirror", cval=0.0, grid_mode=True)
    return xp.clip(out, image.min(), image.max())


def _estimate_xp(stack: Any, smoothness: float, darkfield: bool, darkfield_smoothness: float,
                 working_size: int, max_iterations: int, max_reweightings: int) -> tuple[Any, Any]:
    """Return full-size (flatfield, darkfield) as arrays of the stack's module."""
    xp, ndi = get_modules(stack)
    if stack.ndim != 3 or stack.shape[0] < 2:
        raise ValueError(
            f"flatfield estimation needs a (N, Y, X) stack of at least 2 tiles, got {stack.shape}; "
            "stack the sites of a well (variable_components=[SITE])"
        )
    shape = tuple(int(s) for s in stack.shape[1:])
    size = (min(working_size, shape[0]), min(working_size, shape[1]))
    small = np.stack([asnumpy(_resize(xp, ndi, t.astype(np.float64), size, True)) for t in stack])
    flat_small, dark_small = _estimate(small, smoothness, darkfield, darkfield_smoothness, working_size,
                                       max_iterations, max_reweightings)
    flat = _resize(xp, ndi, xp.asarray(flat_small, dtype=np.float64), shape, False)
    flat /= flat.mean()
    dark = (_resize(xp, ndi, xp.asarray(dark_small, dtype=np.float64), shape, False) if darkfield
            else xp.zeros(shape))
    return flat.astype(np.float32), dark.astype(np.float32)


@register(name="estimate_flatfield", category="Illumination", memory_type="cupy",
          special_outputs=("illumination",),
          keywords=("BaSiC", "shading", "vignetting", "flatfield", "darkfield", "illumination"))
def estimate_flatfield(
    stack: Any,
    *,
    smoothness: Annotated[float, {"min": 0.01, "max": 100.0, "step": 0.1, "above": 0.0}] = 1.0,
    darkfield: bool = False,
    darkfield_smoothness: Annotated[float, {"min": 0.01, "max": 100.0, "step": 0.1, "above": 0.0}] = 1.0,
    working_size: Annotated[int, {"min": 16, "max": 512}] = 128,
    max_iterations: Annotated[int, {"min": 10, "max": 2000}] = 500,
    max_reweightings: Annotated[int, {"min": 1, "max": 50}] = 10,
) -> tuple[Any, dict[str, Any]]:
    """Estimate the flatfield (and darkfield) of a stack of tiles with BaSiC (GPU twin).

    See :func:`napari_openhcs.functions.flatfield.estimate_flatfield`.

    Parameters
    ----------
    stack : ndarray, shape (N, Y, X)
        Tiles of one channel.
    smoothness : float
        Larger values give a smoother flatfield.
    darkfield : bool
        Also estimate an additive darkfield.
    darkfield_smoothness : float
        Multiplies the darkfield regularisation.
    working_size : int
        Tiles are shrunk to at most this size for the estimate.
    max_iterations : int
        Iterations of the low-rank/sparse split.
    max_reweightings : int
        Rounds of foreground down-weighting.

    Returns
    -------
    stack : ndarray
        The input stack, unchanged.
    illumination : dict
        ``{"flatfield": (Y, X) float32 with mean 1, "darkfield": (Y, X) float32}``.
    """
    flat, dark = _estimate_xp(stack, smoothness, darkfield, darkfield_smoothness, working_size,
                              max_iterations, max_reweightings)
    return stack, {"flatfield": flat, "darkfield": dark}


def _apply(xp: ModuleType, stack: Any, flatfield: Any, darkfield: Any | None) -> Any:
    if tuple(flatfield.shape) != tuple(stack.shape[1:]):
        raise ValueError(
            f"the flatfield is {tuple(flatfield.shape)} but the tiles are {tuple(stack.shape[1:])}; "
            "estimate it from tiles of the same size"
        )
    corrected = stack.astype(np.float32)
    if darkfield is not None:
        corrected -= xp.asarray(darkfield, dtype=np.float32)
    corrected /= xp.maximum(xp.asarray(flatfield, dtype=np.float32), 1e-6)
    if np.issubdtype(stack.dtype, np.integer):
        info = np.iinfo(stack.dtype)
        return xp.clip(xp.rint(corrected), info.min, info.max).astype(stack.dtype)
    return corrected.astype(stack.dtype, copy=False)


@register(name="correct_illumination", category="Illumination", memory_type="cupy",
          special_inputs=("illumination",), keywords=("BaSiC", "shading"))
def correct_illumination(stack: Any, *, illumination: dict[str, np.ndarray]) -> Any:
    """Correct tiles with a flatfield (and darkfield): ``(tile - darkfield) / flatfield`` (GPU twin).

    See :func:`napari_openhcs.functions.flatfield.correct_illumination`.

    Parameters
    ----------
    stack : ndarray, shape (N, Y, X)
        Tiles to correct.
    illumination : dict
        ``{"flatfield": (Y, X) array with mean 1, "darkfield": (Y, X) array}``
        (``"darkfield"`` optional); host or device arrays.

    Returns
    -------
    ndarray
        Corrected tiles in the input dtype (integers rounded and clipped).
    """
    if "flatfield" not in illumination:
        raise ValueError(f"illumination needs a 'flatfield' entry; it has {sorted(illumination)}")
    xp, _ = get_modules(stack)
    stack = xp.asarray(stack)
    dark = illumination.get("darkfield")
    flat = xp.asarray(illumination["flatfield"])
    return _apply(xp, stack, flat, None if dark is None else xp.asarray(dark))


@register(name="flatfield_correct", category="Illumination", memory_type="cupy",
          keywords=("BaSiC", "shading", "vignetting", "flatfield"))
def flatfield_correct(
    stack: Any,
    *,
    smoothness: Annotated[float, {"min": 0.01, "max": 100.0, "step": 0.1, "above": 0.0}] = 1.0,
    darkfield: bool = False,
    working_size: Annotated[int, {"min": 16, "max": 512}] = 128,
) -> Any:
    """Estimate the flatfield of a stack of tiles with BaSiC and correct them (GPU twin).

    See :func:`napari_openhcs.functions.flatfield.flatfield_correct`.

    Parameters
    ----------
    stack : ndarray, shape (N, Y, X)
        Tiles of one channel.
    smoothness : float
        Larger values give a smoother flatfield.
    darkfield : bool
        Also estimate and subtract a darkfield.
    working_size : int
        Tiles are shrunk to at most this size for the estimate.

    Returns
    -------
    ndarray
        Corrected tiles in the input dtype.
    """
    xp, _ = get_modules(stack)
    stack = xp.asarray(stack)
    flat, dark = _estimate_xp(stack, smoothness, darkfield, 1.0, working_size, 500, 10)
    return _apply(xp, stack, flat, dark if darkfield else None)
