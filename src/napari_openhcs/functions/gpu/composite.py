"""GPU twin of :func:`napari_openhcs.functions.composite.composite` (weighted mean of the slices)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._xp import as_stack, get_modules
from ..composite import _weights
from ..registry import register


@register(name="composite", category="Composite", memory_type="cupy",
          keywords=("channels", "merge", "combine", "weighted", "mean"))
def composite(
    stack: Any,
    *,
    weights: tuple[float, ...] | None = None,
    normalize: bool = False,
) -> Any:
    """Weighted mean of the slices (channels) of a stack: one image (GPU twin).

    See :func:`napari_openhcs.functions.composite.composite`.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack, one slice per channel.
    weights : tuple of float, optional
        One non-negative weight per slice, in order; ``None`` weighs all equally.
    normalize : bool
        Stretch each slice to [0, 1] between its 0.5th and 99.5th percentiles first.

    Returns
    -------
    ndarray
        ``(1, Y, X)`` float32 image.
    """
    xp, _ = get_modules(stack)
    arr = as_stack(xp, stack)
    w = _weights(weights, arr.shape[0])
    out = xp.zeros(arr.shape[1:], dtype=np.float64)
    for weight, plane in zip(w, arr):
        if weight == 0:
            continue
        img = plane.astype(np.float64)
        if normalize:
            lo, hi = (float(v) for v in xp.percentile(img, (0.5, 99.5)))
            img = xp.clip((img - lo) / (hi - lo), 0, 1) if hi > lo else xp.zeros_like(img)
        out += float(weight) * img
    return (out / w.sum()).astype(np.float32)[None]
