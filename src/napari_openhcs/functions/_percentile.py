"""Percentiles of 8- and 16-bit images from their histogram, equal to ``np.percentile``.

``np.percentile`` copies the image and partially sorts the copy, which for a stack
of a well's tiles (tens of millions of pixels) costs far more than the arithmetic
that uses the result. The pixels of a ``uint8`` or ``uint16`` image take at most
65536 values, so every order statistic can be read from one histogram instead;
the interpolation between order statistics is numpy's own ("linear", Hyndman and
Fan's method 7), step for step, so the results are identical bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["percentiles"]

#: Pixels counted per ``np.bincount`` call (bounds its temporary ``intp`` copy: 2 MiB,
#: which stays in cache while another process streams through memory too).
_CHUNK = 1 << 18
_HISTOGRAM_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))


def percentiles(data: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """Return ``np.percentile(data, q)`` (all pixels, method ``"linear"``).

    Parameters
    ----------
    data : ndarray
        Any array; ``uint8`` and ``uint16`` data are counted in a histogram,
        anything else is passed to ``np.percentile``.
    q : sequence of float
        Percentiles in [0, 100].

    Returns
    -------
    ndarray of float64, shape (len(q),)

    Examples
    --------
    >>> import numpy as np
    >>> image = np.array([[0, 10], [20, 1000]], dtype=np.uint16)
    >>> percentiles(image, [0.5, 50.0, 99.5]).tolist()
    [0.15, 15.0, 985.2999999999998]
    >>> np.percentile(image, [0.5, 50.0, 99.5]).tolist()
    [0.15, 15.0, 985.2999999999998]
    """
    arr = np.asarray(data)
    if arr.dtype not in _HISTOGRAM_DTYPES or arr.size == 0:
        return np.percentile(arr, list(q))
    n = arr.size
    counts = np.zeros(1 << (8 * arr.dtype.itemsize), dtype=np.int64)
    for chunk in _chunks(arr):
        part = np.bincount(chunk)  # up to the chunk's largest value (often 12 bits of 16)
        counts[: part.size] += part
    cumulative = np.cumsum(counts)
    # numpy's _quantile / _get_indexes / _get_gamma / _lerp for method "linear"
    quantiles = np.true_divide(list(q), 100)
    virtual = (n - 1) * quantiles
    previous = np.floor(virtual)
    following = previous + 1
    above = virtual >= n - 1
    previous[above] = -1
    following[above] = -1
    below = virtual < 0
    previous[below] = 0
    following[below] = 0
    previous_i = previous.astype(np.intp)
    following_i = following.astype(np.intp)
    gamma = np.asanyarray(virtual - previous_i, dtype=virtual.dtype)

    def order_statistic(k: np.ndarray) -> np.ndarray:
        k = np.where(k < 0, n + k, k)  # -1: the largest value
        return np.searchsorted(cumulative, k, side="right").astype(arr.dtype)

    a, b = order_statistic(previous_i), order_statistic(following_i)
    diff_b_a = b - a
    result = np.add(a, diff_b_a * gamma)
    np.subtract(b, diff_b_a * (1 - gamma), out=result, where=gamma >= 0.5, casting="unsafe",
                dtype=type(result.dtype))
    return result


def _chunks(arr: np.ndarray) -> Iterator[np.ndarray]:
    """Yield the pixels of ``arr`` as 1-D pieces of at most about ``_CHUNK``, without copying it whole."""
    if arr.flags.c_contiguous:
        flat = arr.reshape(-1)
        for start in range(0, flat.size, _CHUNK):
            yield flat[start : start + _CHUNK]
    elif arr.ndim > 1:
        for part in arr:
            yield from _chunks(part)
    else:
        yield np.ascontiguousarray(arr)
