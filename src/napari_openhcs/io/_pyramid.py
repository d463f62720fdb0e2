"""Resolution pyramids: 2× downsampling of the last two axes (y, x)."""

from __future__ import annotations

from typing import Literal

import numpy as np

#: Stop adding levels once the smaller side of a level is below this many pixels.
MIN_LEVEL_SIDE = 256
#: Never write more levels than this (level 0 included).
MAX_LEVELS = 5

Downsample = Literal["mean", "nearest"]


def level_shapes(
    yx: tuple[int, int], *, min_side: int = MIN_LEVEL_SIDE, max_levels: int = MAX_LEVELS
) -> list[tuple[int, int]]:
    """Return the ``(Y, X)`` shape of every pyramid level, level 0 first.

    A new level (half the size, rounded up) is added while the smaller side of
    the last level is at least ``min_side`` and fewer than ``max_levels`` exist.

    Examples
    --------
    >>> level_shapes((300, 500))
    [(300, 500), (150, 250)]
    >>> level_shapes((200, 2000))
    [(200, 2000)]
    """
    shapes = [(int(yx[0]), int(yx[1]))]
    while len(shapes) < max_levels and min(shapes[-1]) >= min_side:
        y, x = shapes[-1]
        shapes.append(((y + 1) // 2, (x + 1) // 2))
    return shapes


def shape_of_half(yx: tuple[int, ...]) -> tuple[int, int]:
    """The ``(Y, X)`` shape :func:`downsample_2x` makes of ``(Y, X)``: halves, rounded up."""
    return (int(yx[0]) + 1) // 2, (int(yx[1]) + 1) // 2


def downsample_2x(
    image: np.ndarray, *, method: Downsample = "mean", out: np.ndarray | None = None
) -> np.ndarray:
    """Halve the last two axes of ``image`` (odd sizes round up).

    Parameters
    ----------
    image
        Array of 2 or more dimensions; the last two are (y, x).
    method
        ``"mean"`` averages 2×2 blocks (intensity images; integer results are
        rounded to the nearest value), ``"nearest"`` keeps every second pixel
        (label images, where averaging would invent labels).
    out
        Where to put the result (the returned array), of the result's shape and dtype;
        a new array when ``None``.

    Returns
    -------
    np.ndarray
        Same dtype as ``image``, shape ``(..., ceil(Y/2), ceil(X/2))``.
    """
    if method == "mean" and image.dtype in (np.float32, np.float64):
        return _mean_2x2(image, out)
    result = _downsample_2x(image, method)
    if out is None:
        return result
    out[...] = result
    return out


def _downsample_2x(image: np.ndarray, method: Downsample) -> np.ndarray:
    if method == "nearest":
        return np.ascontiguousarray(image[..., ::2, ::2])
    if method != "mean":
        raise ValueError(f"unknown downsampling method {method!r}; use 'mean' or 'nearest'")
    y, x = image.shape[-2:]
    pad = [(0, 0)] * (image.ndim - 2) + [(0, y % 2), (0, x % 2)]
    if y % 2 or x % 2:
        image = np.pad(image, pad, mode="edge")
    lead = image.shape[:-2]
    blocks = image.reshape(*lead, (y + 1) // 2, 2, (x + 1) // 2, 2)
    if np.issubdtype(image.dtype, np.integer) or image.dtype == np.bool_:
        acc = blocks.sum(axis=(-3, -1), dtype=np.int64)
        out = (acc + 2) // 4  # round half up
        return out.astype(image.dtype)
    acc_dtype = np.float64 if image.dtype == np.float64 else np.float32
    return blocks.mean(axis=(-3, -1), dtype=acc_dtype).astype(image.dtype)


def _mean_2x2(image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """2 x 2 means of a float image, an odd last row or column repeated (edge padding).

    ``blocks.mean(axis=(-3, -1))`` of the edge-padded image without the slow reduction
    over two strided axes, and without padding a copy of the image: the same additions
    in the same order (each row's pair, then the two rows), then the same division, so
    the values are identical. An odd last column pairs with itself, as padding makes it.
    """
    y, x = image.shape[-2:]
    ye, xe = y - y % 2, x - x % 2
    if out is None:
        out = np.empty((*image.shape[:-2], (y + 1) // 2, (x + 1) // 2), dtype=image.dtype)
    inner = out[..., : ye // 2, : xe // 2]
    np.add(image[..., 0:ye:2, 0:xe:2], image[..., 0:ye:2, 1:xe:2], out=inner)
    inner += image[..., 1:ye:2, 0:xe:2] + image[..., 1:ye:2, 1:xe:2]
    if x % 2:  # the last column: its pairs are (v, v)
        column, top, bottom = out[..., : ye // 2, -1], image[..., 0:ye:2, -1], image[..., 1:ye:2, -1]
        np.add(top, top, out=column)
        column += bottom + bottom
    if y % 2:  # the last row: it is both rows of its pair
        row, last = out[..., -1, : xe // 2], image[..., -1, :]
        np.add(last[..., 0:xe:2], last[..., 1:xe:2], out=row)
        row += last[..., 0:xe:2] + last[..., 1:xe:2]
        if x % 2:
            corner = image[..., -1, -1]
            out[..., -1, -1] = (corner + corner) + (corner + corner)
    out /= 4
    return out


def build_pyramid(
    image: np.ndarray,
    *,
    method: Downsample = "mean",
    min_side: int = MIN_LEVEL_SIDE,
    max_levels: int = MAX_LEVELS,
) -> list[np.ndarray]:
    """Return ``[image, image/2, image/4, ...]`` following :func:`level_shapes`.

    Each level is computed plane by plane from the previous one, so the extra
    memory is about one third of ``image``.
    """
    shapes = level_shapes(image.shape[-2:], min_side=min_side, max_levels=max_levels)
    levels = [image]
    for _ in shapes[1:]:
        prev = levels[-1]
        lead = prev.shape[:-2]
        flat = prev.reshape(-1, *prev.shape[-2:])
        level = np.empty((len(flat), *shape_of_half(prev.shape[-2:])), dtype=prev.dtype)
        for plane, target in zip(flat, level):
            downsample_2x(plane, method=method, out=target)
        levels.append(level.reshape(*lead, *level.shape[1:]))
    return levels
