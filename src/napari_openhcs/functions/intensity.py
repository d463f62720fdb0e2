"""Intensity normalization, rescaling and dtype conversion.

Dtype rule: normalizations (:func:`percentile_normalize`, :func:`rescale_intensity`)
return float32 in [0, 1] by default; with ``output_dtype="same"`` the [0, 1] result
is scaled to the full range of the input's integer dtype (uint16: 0..65535), and a
float input stays float in [0, 1]. :func:`convert_dtype` returns exactly the dtype asked for.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np

from ._percentile import percentiles
from ._slicewise import OutputDtype, as_stack, from_unit_range, restore_dtype
from .registry import register

Percent = Annotated[float, {"min": 0.0, "max": 100.0, "step": 0.1, "limits": (0.0, 100.0)}]
#: The low percentile of a ``low``/``high`` pair: below ``high``.
LowPercent = Annotated[Percent, {"less_than": "high"}]


#: Pixels mapped at a time by :func:`_unit` (its float32 block stays in L2 cache).
_UNIT_BLOCK = 1 << 16


def _unit(stack: np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float) -> np.ndarray:
    """Map [lo, hi] to [0, 1] (clipped); a flat range maps to zeros.

    ``stack`` is ``(N, Y, X)``; ``lo`` and ``hi`` are numbers or ``(N, 1, 1)`` arrays.
    Each pixel becomes ``clip((float32(pixel) - lo) / (hi - lo), 0, 1)`` in float32,
    computed block by block so that the intermediate values stay in the CPU's cache.
    """
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    span = hi - lo
    safe = np.where(span > 0, span, 1.0)
    per_slice = [np.broadcast_to(v.reshape(-1), (stack.shape[0],))
                 for v in (lo.astype(np.float32), safe.astype(np.float32), ~(span > 0))]
    out = np.empty(stack.shape, dtype=np.float32)
    for plane, target, low, width, flat in zip(stack, out, *per_slice):
        if flat:
            target.fill(0.0)
            continue
        source, values = plane.reshape(-1), target.reshape(-1)
        for start in range(0, values.size, _UNIT_BLOCK):
            block, end = values[start : start + _UNIT_BLOCK], start + _UNIT_BLOCK
            np.copyto(block, source[start:end], casting="unsafe")  # float32(pixel): a plain cast
            np.subtract(block, low, out=block)
            np.divide(block, width, out=block)
            np.clip(block, 0.0, 1.0, out=block)
    return out


@register(category="Intensity", keywords=("normalize", "contrast", "percentile", "scale"))
def percentile_normalize(
    stack: np.ndarray,
    *,
    low: LowPercent = 0.5,
    high: Percent = 99.5,
    per_slice: bool = False,
    output_dtype: OutputDtype = "float32",
) -> np.ndarray:
    """Stretch intensities so that the ``low`` and ``high`` percentiles map to 0 and 1.

    Values outside the percentile range are clipped.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack of any numeric dtype.
    low : float
        Lower percentile (0-100), mapped to 0.
    high : float
        Upper percentile (0-100), mapped to 1.
    per_slice : bool
        Compute the percentiles of each slice separately (each slice fills [0, 1]);
        otherwise one pair for the whole stack (relative brightness is kept).
    output_dtype : {"float32", "same"}
        ``"float32"``: float32 in [0, 1]; ``"same"``: the input dtype, [0, 1] scaled
        to its full range for integer dtypes.

    Returns
    -------
    ndarray
        ``(N, Y, X)`` normalized stack. A slice (or stack) of constant value gives zeros.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> stack = rng.poisson(200, size=(2, 64, 64)).astype(np.uint16)
    >>> out = percentile_normalize(stack, low=1, high=99)
    >>> out.dtype, float(out.min()), float(out.max())
    (dtype('float32'), 0.0, 1.0)
    >>> percentile_normalize(stack, output_dtype="same").dtype
    dtype('uint16')
    """
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}")
    arr = as_stack(stack)
    if per_slice:
        lo, hi = np.stack([percentiles(plane, [low, high]) for plane in arr], axis=1)
        unit = _unit(arr, lo[:, None, None], hi[:, None, None])
    else:
        lo, hi = percentiles(arr, [low, high])
        unit = _unit(arr, lo, hi)
    return from_unit_range(unit, arr.dtype, output_dtype)


@register(category="Intensity", keywords=("normalize", "window", "range", "contrast"))
def rescale_intensity(
    stack: np.ndarray,
    *,
    in_min: float = 0.0,
    in_max: float | None = None,
    output_dtype: OutputDtype = "float32",
) -> np.ndarray:
    """Map the fixed intensity window ``[in_min, in_max]`` to [0, 1].

    Unlike :func:`percentile_normalize`, the window is the same for every well, so
    rescaled intensities stay comparable across a plate.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.
    in_min : float
        Intensity mapped to 0 (values below are clipped).
    in_max : float, optional
        Intensity mapped to 1 (values above are clipped); ``None`` uses the largest
        value of the input dtype (65535 for uint16, 1.0 for floats).
    output_dtype : {"float32", "same"}
        ``"float32"``: float32 in [0, 1]; ``"same"``: the input dtype, [0, 1] scaled
        to its full range for integer dtypes.

    Returns
    -------
    ndarray
        ``(N, Y, X)`` rescaled stack.

    Examples
    --------
    >>> import numpy as np
    >>> stack = np.array([[[100, 2100], [4100, 9000]]], dtype=np.uint16)
    >>> rescale_intensity(stack, in_min=100, in_max=4100)
    array([[[0. , 0.5],
            [1. , 1. ]]], dtype=float32)
    """
    arr = as_stack(stack)
    if in_max is None:
        in_max = float(np.iinfo(arr.dtype).max) if np.issubdtype(arr.dtype, np.integer) else 1.0
    if in_max <= in_min:
        raise ValueError(f"in_max ({in_max}) must be greater than in_min ({in_min})")
    return from_unit_range(_unit(arr, in_min, in_max), arr.dtype, output_dtype)


def _range_max(dtype: np.dtype) -> float:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.max)
    return 1.0


@register(category="Intensity", keywords=("dtype", "cast", "8-bit", "16-bit", "float", "bit depth"))
def convert_dtype(
    stack: np.ndarray,
    *,
    dtype: Literal["uint8", "uint16", "float32"] = "uint16",
    mode: Literal["rescale", "clip"] = "rescale",
) -> np.ndarray:
    """Convert the stack to another pixel type.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.
    dtype : {"uint8", "uint16", "float32"}
        Target pixel type.
    mode : {"rescale", "clip"}
        ``"rescale"`` maps the full range of the input type onto the full range of
        the target (uint16 65535 -> uint8 255; float 1.0 -> uint16 65535; uint16 65535
        -> float 1.0), like scikit-image's ``img_as_*``. ``"clip"`` keeps the values,
        rounded and clipped to the target's range (uint16 300 -> uint8 255).

    Returns
    -------
    ndarray
        ``(N, Y, X)`` stack of the target dtype.

    Examples
    --------
    >>> import numpy as np
    >>> stack = np.array([[[0, 300, 65535]]], dtype=np.uint16)
    >>> convert_dtype(stack, dtype="uint8")
    array([[[  0,   1, 255]]], dtype=uint8)
    >>> convert_dtype(stack, dtype="uint8", mode="clip")
    array([[[  0, 255, 255]]], dtype=uint8)
    """
    if mode not in ("rescale", "clip"):
        raise ValueError(f"mode must be 'rescale' or 'clip', not {mode!r}")
    arr = as_stack(stack)
    target = np.dtype(dtype)
    if target not in (np.uint8, np.uint16, np.float32):
        raise ValueError(f"dtype must be 'uint8', 'uint16' or 'float32', not {dtype!r}")
    if mode == "clip" or arr.dtype == bool:
        return restore_dtype(arr.astype(np.float64), target)
    scale = _range_max(target) / _range_max(arr.dtype)
    values = arr.astype(np.float64)
    if not np.issubdtype(arr.dtype, np.integer):
        values = np.clip(values, 0.0, 1.0)
    return restore_dtype(values * scale, target)


@register(category="Intensity", keywords=("invert", "negative"))
def invert_intensity(stack: np.ndarray) -> np.ndarray:
    """Invert intensities within the dtype's range (integers: ``max - x``; floats: ``1 - x``).

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack; floats are expected in [0, 1].

    Returns
    -------
    ndarray
        ``(N, Y, X)`` inverted stack of the input dtype.

    Examples
    --------
    >>> import numpy as np
    >>> invert_intensity(np.array([[[0, 10, 255]]], dtype=np.uint8))
    array([[[255, 245,   0]]], dtype=uint8)
    """
    arr = as_stack(stack)
    if arr.dtype == bool:
        return ~arr
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        return (info.max - arr.astype(np.int64) + info.min).astype(arr.dtype)
    return (1.0 - arr).astype(arr.dtype)
