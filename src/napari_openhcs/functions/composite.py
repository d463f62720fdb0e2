"""Channel composites: combine the slices of a stack (usually channels) into one image.

Use in a step with ``variable_components=[CHANNEL]``: the stack is then the channels
of one site, in channel order, and a composite (e.g. for stitching alignment on all
channels at once) replaces them.

Dtype rule: the composite is float32 (a weighted mean is not an integer).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._slicewise import as_stack
from .registry import register

#: Bytes of one float64 band of rows summed at a time (two such buffers stay in L2 cache).
_BAND_BYTES = 256 * 1024


def _weights(weights: Sequence[float] | None, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n, dtype=np.float64)
    w = np.asarray(tuple(weights), dtype=np.float64).ravel()
    if w.size != n:
        raise ValueError(
            f"composite got {w.size} weights for a stack of {n} slices; give one weight per "
            f"slice (channel), in channel order"
        )
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative numbers that do not all equal 0, got {tuple(w)}")
    return w


@register(category="Composite", keywords=("channels", "merge", "combine", "weighted", "mean"))
def composite(
    stack: np.ndarray,
    *,
    weights: tuple[float, ...] | None = None,
    normalize: bool = False,
) -> np.ndarray:
    """Weighted mean of the slices (channels) of a stack: one image.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack, one slice per channel.
    weights : tuple of float, optional
        One non-negative weight per slice, in order; ``None`` weighs all equally.
        Weights are divided by their sum, so ``(2, 1)`` and ``(0.66, 0.33)`` agree.
    normalize : bool
        Stretch each slice to [0, 1] between its 0.5th and 99.5th percentiles before
        combining, so that a dim channel counts as much as a bright one.

    Returns
    -------
    ndarray
        ``(1, Y, X)`` float32 image.

    Examples
    --------
    >>> import numpy as np
    >>> stack = np.array([[[100, 200]], [[300, 400]]], dtype=np.uint16)
    >>> composite(stack)
    array([[[200., 300.]]], dtype=float32)
    >>> composite(stack, weights=(3, 1))
    array([[[150., 250.]]], dtype=float32)
    """
    arr = as_stack(stack)
    w = _weights(weights, arr.shape[0])
    planes = [(weight, _unit_plane(plane) if normalize else plane)
              for weight, plane in zip(w, arr) if weight != 0]
    return _weighted_mean(planes, w.sum(), arr.shape[1:])[np.newaxis]


def _unit_plane(plane: np.ndarray) -> np.ndarray:
    """Stretch one plane to [0, 1] between its 0.5th and 99.5th percentiles (float64)."""
    img = plane.astype(np.float64)
    lo, hi = np.percentile(img, [0.5, 99.5])
    return np.clip((img - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(img)


def _weighted_mean(
    planes: list[tuple[float, np.ndarray]], total: float, shape: tuple[int, ...]
) -> np.ndarray:
    """``sum(weight * plane) / total`` in float64, returned as float32, band by band.

    Each band of rows is summed in buffers small enough to stay in the CPU's cache, so
    the float64 intermediates never travel to memory; every pixel still gets the same
    operations in the same order as a whole-image sum (the result is identical).
    """
    height, width = shape
    out = np.empty(shape, dtype=np.float32)
    rows = max(1, _BAND_BYTES // (8 * max(width, 1)))
    acc = np.empty((min(rows, height), width), dtype=np.float64)
    weighted = np.empty_like(acc)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        band, term = acc[: bottom - top], weighted[: bottom - top]
        band.fill(0.0)
        for weight, plane in planes:  # weight * plane.astype(float64), in one buffer
            np.multiply(weight, plane[top:bottom], out=term, dtype=np.float64, casting="unsafe")
            band += term
        band /= total
        out[top:bottom] = band
    return out
