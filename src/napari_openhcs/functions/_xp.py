"""Array-module helpers: one function body for NumPy and CuPy arrays (the cuCIM style).

A GPU twin is written once against ``xp`` (``numpy`` or ``cupy``) and ``ndi``
(``scipy.ndimage`` or ``cupyx.scipy.ndimage``), chosen from its input array by
:func:`get_modules`. Called with a NumPy array the same code runs on the CPU, which
is how the twins are tested on machines without a GPU. CuPy is imported only when
a CuPy array is actually handed over, never at module level.

The dtype helpers here follow the library-wide rules of :mod:`._slicewise`
(filters keep the input dtype, rounding and clipping integers; normalizations
return float32 in [0, 1] or the input's full integer range).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from ._lazy import LazyModule

_SCIPY_NDIMAGE: Any = LazyModule("scipy.ndimage")

__all__ = [
    "as_stack",
    "asnumpy",
    "from_unit_range",
    "get_modules",
    "is_device_array",
    "restore_dtype",
    "to_float",
    "to_host",
]


def is_device_array(array: Any) -> bool:
    """Return True for a CuPy array (checked by type, without importing CuPy)."""
    return type(array).__module__.split(".")[0] == "cupy"


def get_modules(array: Any) -> tuple[ModuleType, Any]:
    """Return ``(xp, ndi)`` for an array: CuPy and cupyx's ndimage, or NumPy and SciPy's.

    Parameters
    ----------
    array
        A NumPy or CuPy array (anything else counts as NumPy).

    Returns
    -------
    xp, ndi : module
        ``(cupy, cupyx.scipy.ndimage)`` for a CuPy array, else ``(numpy, scipy.ndimage)``
        (``scipy.ndimage`` as a :class:`LazyModule`: imported on its first use).

    Examples
    --------
    >>> import numpy as np
    >>> xp, ndi = get_modules(np.zeros(3))
    >>> xp.__name__, ndi.__name__
    ('numpy', 'scipy.ndimage')
    """
    if is_device_array(array):
        import cupy  # type: ignore[import-not-found]
        import cupyx.scipy.ndimage as cupy_ndimage  # type: ignore[import-not-found]

        return cupy, cupy_ndimage
    return np, _SCIPY_NDIMAGE  # SciPy is imported when a function first uses it


def asnumpy(array: Any) -> np.ndarray:
    """Return ``array`` as a NumPy array (copied to the host when it is a CuPy array)."""
    if is_device_array(array):
        return array.get()
    return np.asarray(array)


def to_host(value: Any) -> Any:
    """Return ``value`` with every CuPy array in it (also inside dicts, lists, tuples) on the host.

    Special outputs (tables, label images, illumination profiles) are kept on the
    host between steps, so that CPU steps and table writers can use them as they are.
    """
    if is_device_array(value):
        return value.get()
    if isinstance(value, Mapping):
        return {k: to_host(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_host(v) for v in value)
    return value


def cupy_loaded() -> bool:
    """True when CuPy has already been imported by this process (nothing is imported here)."""
    return "cupy" in sys.modules


def as_stack(xp: ModuleType, stack: Any) -> Any:
    """Return ``stack`` as a 3-D array of module ``xp``, promoting a 2-D image to ``(1, Y, X)``.

    Raises
    ------
    ValueError
        If the array is neither 2-D nor 3-D.
    """
    arr = xp.asarray(stack)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"expected a (N, Y, X) stack of images, got an array of shape {arr.shape}")
    return arr


def restore_dtype(xp: ModuleType, result: Any, dtype: Any) -> Any:
    """Cast a float result back to ``dtype``, rounding and clipping for integer dtypes.

    Examples
    --------
    >>> import numpy as np
    >>> restore_dtype(np, np.array([-3.2, 10.6, 70000.0]), np.uint16)
    array([    0,    11, 65535], dtype=uint16)
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return xp.asarray(result) > 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return xp.clip(xp.rint(result), info.min, info.max).astype(dtype)
    return xp.asarray(result, dtype=dtype)


def from_unit_range(xp: ModuleType, unit: Any, dtype: Any, output_dtype: str) -> Any:
    """Convert a float image in [0, 1] to the requested output dtype (see :mod:`._slicewise`).

    Examples
    --------
    >>> import numpy as np
    >>> from_unit_range(np, np.array([0.0, 0.5, 1.0]), np.uint8, "same")
    array([  0, 128, 255], dtype=uint8)
    """
    if output_dtype not in ("float32", "same"):
        raise ValueError(f"output_dtype must be 'float32' or 'same', not {output_dtype!r}")
    unit = xp.asarray(unit, dtype=np.float32)
    dtype = np.dtype(dtype)
    if output_dtype == "float32" or dtype.kind == "b":
        return unit
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        low = 0 if info.min < 0 else info.min
        return restore_dtype(xp, unit.astype(np.float64) * (info.max - low) + low, dtype)
    return unit.astype(dtype)


def to_float(xp: ModuleType, stack: Any) -> Any:
    """Return the stack as float32 (float64 input is kept as float64)."""
    arr = xp.asarray(stack)
    return arr if arr.dtype == np.float64 else arr.astype(np.float32)
