"""Helpers shared by the function library: per-slice application and dtype rules.

Every step function takes a ``(N, Y, X)`` stack. Most image operations are 2-D, so
they are applied to each ``(Y, X)`` slice in turn (:func:`map_slices`). The dtype
helpers implement the library-wide rules:

- *filters* (smoothing, sharpening, background subtraction) keep the input dtype;
  integer results are rounded and clipped to the dtype's range (:func:`restore_dtype`);
- *normalizations* return float32 in [0, 1], or the same range scaled to the input
  integer dtype (:func:`from_unit_range`);
- outputs of wrapped third-party operations are narrowed: float64 to float32 and
  64-bit labels to int32 (:func:`narrow_dtype`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from . import _xp

OutputDtype = Literal["float32", "same"]


def as_stack(stack: Any) -> np.ndarray:
    """Return ``stack`` as a 3-D NumPy array, promoting a single 2-D image to ``(1, Y, X)``.

    Raises
    ------
    ValueError
        If the array is neither 2-D nor 3-D.
    """
    return _xp.as_stack(np, stack)


def map_slices(func: Callable[..., Any], stack: np.ndarray, /, **kwargs: Any) -> np.ndarray:
    """Apply a 2-D operation to each slice of a stack and stack the results.

    Parameters
    ----------
    func : callable
        Takes a ``(Y, X)`` image (and ``kwargs``) and returns an image of the same shape.
    stack : ndarray
        ``(N, Y, X)`` stack.
    **kwargs
        Passed to ``func`` unchanged.

    Returns
    -------
    ndarray
        ``(N, Y, X)`` stack of the results, in the dtype ``func`` returned.

    Raises
    ------
    ValueError
        If ``func`` returns an image of another shape.

    Examples
    --------
    >>> import numpy as np
    >>> stack = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    >>> map_slices(np.fliplr, stack)[1, 0]
    array([15, 14, 13, 12], dtype=uint16)
    """
    arr = as_stack(stack)
    out = []
    for plane in arr:
        res = np.asarray(func(plane, **kwargs))
        if res.shape != plane.shape:
            name = getattr(func, "__name__", repr(func))
            raise ValueError(
                f"{name} returned an image of shape {res.shape} for a slice of shape {plane.shape}; "
                f"only operations that keep the image size can be applied slice by slice"
            )
        out.append(res)
    return np.stack(out)


def restore_dtype(result: np.ndarray, dtype: np.dtype[Any] | type) -> np.ndarray:
    """Cast a float result back to ``dtype``, rounding and clipping for integer dtypes.

    Examples
    --------
    >>> import numpy as np
    >>> restore_dtype(np.array([-3.2, 10.6, 70000.0]), np.uint16)
    array([    0,    11, 65535], dtype=uint16)
    """
    return _xp.restore_dtype(np, result, dtype)


def from_unit_range(unit: np.ndarray, dtype: np.dtype[Any] | type, output_dtype: OutputDtype) -> np.ndarray:
    """Convert a float image in [0, 1] to the requested output dtype.

    ``output_dtype="float32"`` returns float32 unchanged; ``"same"`` scales [0, 1] to
    the full range of an integer ``dtype`` (``uint16``: 0..65535) or keeps a float
    ``dtype`` (values stay in [0, 1]).

    Examples
    --------
    >>> import numpy as np
    >>> from_unit_range(np.array([0.0, 0.5, 1.0]), np.uint8, "same")
    array([  0, 128, 255], dtype=uint8)
    """
    return _xp.from_unit_range(np, unit, dtype, output_dtype)


def narrow_dtype(arr: np.ndarray) -> np.ndarray:
    """Narrow float64 to float32 and 64-bit integers (labels) to int32 when values fit.

    Examples
    --------
    >>> import numpy as np
    >>> narrow_dtype(np.array([1, 2], dtype=np.int64)).dtype
    dtype('int32')
    >>> narrow_dtype(np.array([0.5])).dtype
    dtype('float32')
    """
    arr = np.asarray(arr)
    if arr.dtype == np.float64:
        return arr.astype(np.float32)
    if arr.dtype in (np.int64, np.uint64, np.uint32):
        if arr.size == 0 or (arr.min() >= np.iinfo(np.int32).min and arr.max() <= np.iinfo(np.int32).max):
            return arr.astype(np.int32)
    return arr


def to_float(stack: np.ndarray) -> np.ndarray:
    """Return the stack as float32 (float64 input is kept as float64)."""
    return _xp.to_float(np, stack)
