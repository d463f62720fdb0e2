"""scikit-image and scipy.ndimage operations registered as step functions, slice by slice.

Each operation listed in :mod:`._wrapped_table` becomes a :class:`WrappedOperation`
registered as ``skimage.<module>.<name>`` or ``ndimage.<name>``: a callable with a
real signature (``stack`` first, then the original's keyword options that a form can
show: numbers, booleans, text) and a picklable identity (its registered name), so
that pipelines can name it and worker processes can receive it.

Signatures come from :mod:`._wrapped_signatures` (generated at development time by
:mod:`._wrapped_build`), so registering them imports neither library: the wrapped
function is imported when the operation first runs.

Options a form cannot edit (arrays, callables, output buffers, ``channel_axis``,
masks, ...) are left out and keep the original's default. A scikit-image
``footprint`` option is replaced by ``footprint_radius`` (a disk); SciPy filters keep
their ``size`` option.

Dtype rule: the result of the wrapped function is returned as it comes, except that
float64 is narrowed to float32 and 64-bit integer labels to int32. Thresholds give
boolean masks, multi-level thresholds uint8 class indices. Rank filters work on
8-bit images: other inputs are rescaled to uint8 over the stack's range first.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np

from ._slicewise import as_stack, map_slices, narrow_dtype
from ._wrapped_signatures import SIGNATURES
from ._wrapped_table import FIXED, OPERATIONS
from .registry import register

#: Integer-valued defaults of these options are continuous quantities (offered as float).
_FLOAT_NAMES = frozenset({
    "sigma", "sigma_spatial", "sigma_x", "sigma_y", "scale", "k", "bandwidth", "offset", "cval", "h",
    "alpha", "beta", "gamma", "gain", "cutoff", "mu", "lambda1", "lambda2", "dt", "tol", "low_sigma",
    "high_sigma", "amount", "radius", "theta", "frequency", "angle", "strength", "shift", "percentile",
    "p0", "p1", "s0", "s1", "compactness", "truncate", "eps", "weight", "R", "balloon", "smoothing",
    "min_size_factor", "max_size_factor",
})
_NONNEGATIVE = frozenset({"sigma", "low_sigma", "high_sigma", "size", "radius", "footprint_radius", "h",
                          "iterations", "window_size", "block_size", "area_threshold", "diameter_threshold",
                          "max_size", "min_size"})
_NDI_MODES = ("reflect", "constant", "nearest", "mirror", "wrap")


def registered_name(module: str, name: str) -> str:
    """Return the registry name of ``module.name`` (``scipy.ndimage`` becomes ``ndimage``).

    Examples
    --------
    >>> registered_name("scipy.ndimage", "median_filter"), registered_name("skimage.filters", "sobel")
    ('ndimage.median_filter', 'skimage.filters.sobel')
    """
    prefix = "ndimage" if module == "scipy.ndimage" else module
    return f"{prefix}.{name}"


def option_annotation(name: str, default: Any, module: str) -> Any:
    """Return the form annotation of an option from its default (``Annotated`` limits, choices)."""
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        base: Any = float if name in _FLOAT_NAMES else int
    elif isinstance(default, float):
        base = float
    elif name == "mode" and module == "scipy.ndimage" and default in _NDI_MODES:
        return Literal[_NDI_MODES]  # type: ignore[valid-type]
    else:
        return str
    return Annotated[base, {"min": 0, "limits": (0, None)}] if name in _NONNEGATIVE else base


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    values = arr.astype(np.float64)
    lo, hi = float(values.min()), float(values.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.rint((values - lo) * scale).astype(np.uint8)


def _as_labels(plane: np.ndarray) -> np.ndarray:
    if np.issubdtype(plane.dtype, np.integer):
        return plane
    from scipy import ndimage as ndi

    return ndi.label(plane != 0)[0].astype(np.int32)


def _docstring(summary: str, source: str, kind: str, options: tuple[tuple[str, Any, str], ...]) -> str:
    lines = [
        summary,
        "",
        f"Applies :func:`{source}` to each (Y, X) slice of the stack ({kind} operation; see "
        f"``napari_openhcs.functions._skimage_wrappers`` for the dtype rules).",
        "",
        "Parameters",
        "----------",
        "stack : ndarray",
        "    ``(N, Y, X)`` stack.",
    ]
    for name, default, text in options:
        text = text or f"Option ``{name}`` of ``{source}``."
        lines += [f"{name} : {type(default).__name__}", f"    {text}"]
    lines += ["", "Returns", "-------", "ndarray", "    ``(N, Y, X)`` stack."]
    return "\n".join(lines)


class WrappedOperation:
    """A 2-D scikit-image or SciPy operation applied to each slice of a ``(N, Y, X)`` stack.

    Parameters
    ----------
    name : str
        Registered name, e.g. ``"skimage.filters.gaussian"``.
    module, function : str
        Where the wrapped function lives (imported on first use).
    kind : str
        How the function is applied (see :mod:`._wrapped_table`).
    summary : str
        One-line description.
    options : tuple of (str, default, str)
        Keyword options shown in forms: name, default and a one-sentence description.

    Examples
    --------
    >>> import numpy as np
    >>> op = WrappedOperation("ndimage.median_filter", "scipy.ndimage", "median_filter", "image",
    ...                       "Median filter.", (("size", 3, "Width of the neighbourhood."),))
    >>> stack = np.full((2, 16, 16), 100, dtype=np.uint16)
    >>> stack[0, 8, 8] = 60000
    >>> op(stack, size=3)[0, 8, 8], op(stack).shape
    (np.uint16(100), (2, 16, 16))
    """

    def __init__(self, name: str, module: str, function: str, kind: str, summary: str,
                 options: tuple[tuple[str, Any, str], ...]) -> None:
        self.__name__ = name
        self.__qualname__ = name
        self.__module__ = __name__
        self._module, self._function, self._kind = module, function, kind
        self._target: Callable[..., Any] | None = None
        self._defaults = {n: d for n, d, _ in options}
        self._fixed = FIXED.get(f"{module}.{function}", {})
        params = [inspect.Parameter("stack", inspect.Parameter.POSITIONAL_ONLY, annotation=np.ndarray)]
        params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d,
                                     annotation=option_annotation(n, d, module)) for n, d, _ in options]
        self.__signature__ = inspect.Signature(params, return_annotation=np.ndarray)
        self.__doc__ = _docstring(summary, f"{module}.{function}", kind, options)

    def __repr__(self) -> str:
        return f"<wrapped operation {self.__name__}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (wrapped_operation, (self.__name__,))

    @property
    def target(self) -> Callable[..., Any]:
        """The wrapped function (imported on first use)."""
        if self._target is None:
            self._target = getattr(importlib.import_module(self._module), self._function)
        return self._target

    def __call__(self, stack: np.ndarray, /, **kwargs: Any) -> np.ndarray:
        unknown = set(kwargs) - set(self._defaults)
        if unknown:
            raise TypeError(f"{self.__name__}() got unknown options {sorted(unknown)}; "
                            f"its options are {sorted(self._defaults)}")
        options = {**self._defaults, **kwargs}
        if "footprint_radius" in options:
            from skimage.morphology import disk

            options["footprint"] = disk(int(options.pop("footprint_radius")))
        options.update(self._fixed)
        arr = as_stack(stack)
        target, kind = self.target, self._kind
        if kind == "rank":
            return narrow_dtype(map_slices(target, _to_uint8(arr), **options))
        if kind == "mask":
            return narrow_dtype(map_slices(target, arr != 0, **options))
        if kind == "labels":
            return narrow_dtype(map_slices(lambda p, **kw: target(_as_labels(p), **kw), arr, **options))
        if kind == "threshold":
            return map_slices(lambda p, **kw: p > target(p, **kw), arr, **options)
        if kind == "classes":
            return map_slices(lambda p, **kw: np.digitize(p, target(p, **kw)).astype(np.uint8), arr,
                              **options)
        if kind == "first":
            return narrow_dtype(map_slices(lambda p, **kw: target(p, **kw)[0], arr, **options))
        return narrow_dtype(map_slices(target, arr, **options))


_WRAPPED: dict[str, WrappedOperation] = {}


def wrapped_operation(name: str) -> WrappedOperation:
    """Return the wrapped operation registered as ``name`` (how pickles refer to one)."""
    return _WRAPPED[name]


def _build() -> None:
    for module, category, kind, names in OPERATIONS:
        for function in names:
            stored = SIGNATURES.get(f"{module}.{function}")
            if stored is None:  # listed but not generated yet: run _wrapped_build
                continue
            name = registered_name(module, function)
            op = WrappedOperation(name, module, function, kind, *stored)
            keywords = (function.replace("_", " "), module.rsplit(".", 1)[-1], kind)
            register(name, category=category, keywords=keywords)(op)
            _WRAPPED[name] = op


_build()
