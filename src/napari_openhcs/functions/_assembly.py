"""Place tiles on one canvas, with linear blending in the overlaps."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._xp import get_modules

__all__ = ["assemble", "edge_ramp"]

#: Bytes of one float32 band of canvas rows blended at a time (a few stay in L2 cache).
_BAND_BYTES = 256 * 1024


def edge_ramp(shape: tuple[int, int]) -> np.ndarray:
    """Return a weight that rises linearly from a tile's edges to its centre.

    The weight of a pixel is the product of its distances (plus one half) to
    the nearest vertical and horizontal edges, so it is positive everywhere,
    smallest at the corners and largest in the middle.

    Parameters
    ----------
    shape : (int, int)
        Tile shape.

    Returns
    -------
    ndarray of float32
        The weight image.

    Examples
    --------
    >>> edge_ramp((3, 4)).tolist()
    [[0.25, 0.75, 0.75, 0.25], [0.75, 2.25, 2.25, 0.75], [0.25, 0.75, 0.75, 0.25]]
    """
    ramps = []
    for size in shape:
        idx = np.arange(size, dtype=np.float32)
        ramps.append(np.minimum(idx, size - 1 - idx) + 0.5)
    return np.outer(ramps[0], ramps[1]).astype(np.float32)


def assemble(tiles: Any, origins: np.ndarray, *, blend: str = "linear") -> Any:
    """Place ``(N, Y, X)`` tiles at integer ``(N, 2)`` origins on one canvas.

    NumPy or CuPy tiles; the canvas is on the tiles' device.

    Parameters
    ----------
    tiles : ndarray, shape (N, Y, X)
        The tiles.
    origins : ndarray of int, shape (N, 2)
        Top-left origin (y, x) of each tile on the canvas; the smallest is 0.
    blend : {"linear", "none"}
        ``"linear"``: overlapping pixels are averaged with :func:`edge_ramp`
        weights, so seams fade out; ``"none"``: later tiles overwrite earlier ones.

    Returns
    -------
    ndarray, shape (H, W)
        The canvas, in the tiles' dtype (integers are rounded and clipped);
        pixels that no tile covers are 0.

    Examples
    --------
    >>> import numpy as np
    >>> tiles = np.stack([np.full((2, 3), 10, np.uint16), np.full((2, 3), 20, np.uint16)])
    >>> assemble(tiles, np.array([[0, 0], [0, 2]])).tolist()
    [[10, 10, 15, 20, 20], [10, 10, 15, 20, 20]]
    """
    xp, _ = get_modules(tiles)
    n, ty, tx = tiles.shape
    origins = np.asarray(origins, dtype=np.intp).reshape(n, 2)
    if n == 0:
        raise ValueError("cannot assemble an empty stack of tiles")
    if origins.min() < 0:
        raise ValueError("tile origins must not be negative")
    height = int(origins[:, 0].max()) + ty
    width = int(origins[:, 1].max()) + tx
    if blend == "none":
        canvas = xp.zeros((height, width), dtype=tiles.dtype)
        for tile, (y, x) in zip(tiles, origins):
            canvas[y : y + ty, x : x + tx] = tile
        return canvas
    if blend != "linear":
        raise ValueError(f"blend must be 'linear' or 'none', not {blend!r}")
    if xp is np:
        return _cast(np, _blend_in_bands(tiles, origins, (height, width)), tiles.dtype)
    weight = xp.asarray(edge_ramp((ty, tx)))
    total = xp.zeros((height, width), dtype=np.float32)
    weight_sum = xp.zeros((height, width), dtype=np.float32)
    for tile, (y, x) in zip(tiles, origins):
        total[y : y + ty, x : x + tx] += tile.astype(np.float32) * weight
        weight_sum[y : y + ty, x : x + tx] += weight
    covered = weight_sum > 0  # CuPy's divide has no ``where``
    canvas = xp.where(covered, total / xp.where(covered, weight_sum, 1.0), 0.0).astype(np.float32)
    return _cast(xp, canvas, tiles.dtype)


def _blend_in_bands(tiles: np.ndarray, origins: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Linear blend of NumPy tiles into a float32 canvas, one band of canvas rows at a time.

    A band's weighted sum and weight sum stay in the CPU's cache while every tile
    that crosses it adds its rows, so each tile is read once and the canvas written
    once. Every pixel gets the same float32 operations in the same order (tiles in
    stack order) as summing whole canvases would, so the result is the same.
    """
    n, ty, tx = tiles.shape
    height, width = shape
    weight = edge_ramp((ty, tx))
    canvas = np.empty((height, width), dtype=np.float32)
    rows = max(1, _BAND_BYTES // (4 * width))
    total = np.empty((min(rows, height), width), dtype=np.float32)
    weight_sum = np.empty_like(total)
    term = np.empty((total.shape[0], tx), dtype=np.float32)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        band_total, band_weight = total[: bottom - top], weight_sum[: bottom - top]
        band_total.fill(0.0)
        band_weight.fill(0.0)
        for tile, (y, x) in zip(tiles, origins):
            first, last = max(top, y), min(bottom, y + ty)
            if first >= last:
                continue
            ramp = weight[first - y : last - y]
            part = term[: last - first]
            np.multiply(tile[first - y : last - y], ramp, out=part, dtype=np.float32, casting="unsafe")
            band_total[first - top : last - top, x : x + tx] += part
            band_weight[first - top : last - top, x : x + tx] += ramp
        # where no tile lands the band's total is 0 already
        np.divide(band_total, band_weight, out=band_total, where=band_weight > 0)
        canvas[top:bottom] = band_total
    return canvas


def _cast(xp: Any, image: Any, dtype: np.dtype) -> Any:
    """Cast a float image back to ``dtype`` (rounding and clipping for integers)."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return xp.clip(xp.rint(image), info.min, info.max).astype(dtype)
    if dtype == np.bool_:
        return image >= 0.5
    return image.astype(dtype, copy=False)
