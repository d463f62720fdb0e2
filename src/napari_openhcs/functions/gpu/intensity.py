"""GPU twins of :mod:`napari_openhcs.functions.intensity` (same names, signatures and dtype rules)."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Literal

import numpy as np

from .._slicewise import OutputDtype
from .._xp import as_stack, from_unit_range, get_modules, restore_dtype
from ..intensity import LowPercent, Percent
from ..registry import register


def _unit(xp: ModuleType, stack: Any, lo: Any, hi: Any) -> Any:
    """Map [lo, hi] to [0, 1] (clipped); a flat range maps to zeros."""
    lo = xp.asarray(lo, dtype=np.float64)
    hi = xp.asarray(hi, dtype=np.float64)
    span = hi - lo
    safe = xp.where(span > 0, span, 1.0)
    out = (stack.astype(np.float32) - lo.astype(np.float32)) / safe.astype(np.float32)
    out = xp.where(span > 0, out, 0.0)
    return xp.clip(out, 0.0, 1.0).astype(np.float32)


@register(name="percentile_normalize", category="Intensity", memory_type="cupy",
          keywords=("normalize", "contrast", "percentile", "scale"))
def percentile_normalize(
    stack: Any,
    *,
    low: LowPercent = 0.5,
    high: Percent = 99.5,
    per_slice: bool = False,
    output_dtype: OutputDtype = "float32",
) -> Any:
    """Stretch intensities so that the ``low`` and ``high`` percentiles map to 0 and 1 (GPU twin).

    See :func:`napari_openhcs.functions.intensity.percentile_normalize`.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack (CuPy on the GPU; NumPy runs the same code on the CPU).
    low : float
        Lower percentile (0-100), mapped to 0.
    high : float
        Upper percentile (0-100), mapped to 1.
    per_slice : bool
        Compute the percentiles of each slice separately.
    output_dtype : {"float32", "same"}
        ``"float32"``: float32 in [0, 1]; ``"same"``: the input dtype.

    Returns
    -------
    ndarray
        ``(N, Y, X)`` normalized stack, same array type as the input.
    """
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}")
    xp, _ = get_modules(stack)
    arr = as_stack(xp, stack)
    if per_slice:
        flat = arr.reshape(arr.shape[0], -1)
        lo, hi = xp.percentile(flat, (low, high), axis=1)
        unit = _unit(xp, arr, lo[:, None, None], hi[:, None, None])
    else:
        lo, hi = xp.percentile(arr, (low, high))
        unit = _unit(xp, arr, lo, hi)
    return from_unit_range(xp, unit, arr.dtype, output_dtype)


@register(name="rescale_intensity", category="Intensity", memory_type="cupy",
          keywords=("normalize", "window", "range", "contrast"))
def rescale_intensity(
    stack: Any,
    *,
    in_min: float = 0.0,
    in_max: float | None = None,
    output_dtype: OutputDtype = "float32",
) -> Any:
    """Map the fixed intensity window ``[in_min, in_max]`` to [0, 1] (GPU twin).

    See :func:`napari_openhcs.functions.intensity.rescale_intensity`.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.
    in_min : float
        Intensity mapped to 0.
    in_max : float, optional
        Intensity mapped to 1; ``None`` uses the largest value of the input dtype.
    output_dtype : {"float32", "same"}
        ``"float32"``: float32 in [0, 1]; ``"same"``: the input dtype.

    Returns
    -------
    ndarray
        ``(N, Y, X)`` rescaled stack.
    """
    xp, _ = get_modules(stack)
    arr = as_stack(xp, stack)
    if in_max is None:
        in_max = float(np.iinfo(arr.dtype).max) if np.issubdtype(arr.dtype, np.integer) else 1.0
    if in_max <= in_min:
        raise ValueError(f"in_max ({in_max}) must be greater than in_min ({in_min})")
    return from_unit_range(xp, _unit(xp, arr, in_min, in_max), arr.dtype, output_dtype)


def _range_max(dtype: np.dtype[Any]) -> float:
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


@register(name="convert_dtype", category="Intensity", memory_type="cupy",
          keywords=("dtype", "cast", "8-bit", "16-bit", "float", "bit depth"))
def convert_dtype(
    stack: Any,
    *,
    dtype: Literal["uint8", "uint16", "float32"] = "uint16",
    mode: Literal["rescale", "clip"] = "rescale",
) -> Any:
    """Convert the stack to another pixel type (GPU twin).

    See :func:`napari_openhcs.functions.intensity.convert_dtype`.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.
    dtype : {"uint8", "uint16", "float32"}
        Target pixel type.
    mode : {"rescale", "clip"}
        ``"rescale"`` maps the full range of the input type onto the target's;
        ``"clip"`` keeps the values, rounded and clipped.

    Returns
    -------
    ndarray
        ``(N, Y, X)`` stack of the target dtype.
    """
    if mode not in ("rescale", "clip"):
        raise ValueError(f"mode must be 'rescale' or 'clip', not {mode!r}")
    xp, _ = get_modules(stack)
    arr = as_stack(xp, stack)
    target = np.dtype(dtype)
    if target not in (np.uint8, np.uint16, np.float32):
        raise ValueError(f"dtype must be 'uint8', 'uint16' or 'float32', not {dtype!r}")
    if mode == "clip" or arr.dtype == bool:
        return restore_dtype(xp, arr.astype(np.float64), target)
    scale = _range_max(target) / _range_max(arr.dtype)
    values = arr.astype(np.float64)
    if not np.issubdtype(arr.dtype, np.integer):
        values = xp.clip(values, 0.0, 1.0)
    return restore_dtype(xp, values * scale, target)


@register(name="invert_intensity", category="Intensity", memory_type="cupy", keywords=("invert", "negative"))
def invert_intensity(stack: Any) -> Any:
    """Invert intensities within the dtype's range (GPU twin).

    See :func:`napari_openhcs.functions.intensity.invert_intensity`.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack; floats are expected in [0, 1].

    Returns
    -------
    ndarray
        ``(N, Y, X)`` inverted stack of the input dtype.
    """
    xp, _ = get_modules(stack)
    arr = as_stack(xp, stack)
    if arr.dtype == bool:
        return ~arr
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        return (info.max - arr.astype(np.int64) + info.min).astype(arr.dtype)
    return (1.0 - arr).astype(arr.dtype)
