"""Flatfield and darkfield estimation (BaSiC) and illumination correction.

The shading model of BaSiC (Peng et al., *Nat. Commun.* 8, 14836, 2017) is
``I_i(x) = F(x) * B_i(x) + D(x)``: every tile ``I_i`` is the true image ``B_i``
times one flatfield ``F`` (mean 1) plus one darkfield ``D``.  Tiles are
shrunk to a small working size and, pixel by pixel, sorted along the tile
axis, which turns the stack into a nearly rank-one matrix (row ``k`` holds the
``k``-th smallest value of every pixel).  That matrix is split into a
low-rank part ``F * c_k + D``, whose ``F`` and ``D`` are smooth (sparse in the
DCT domain, L1-penalised), and a sparse residual that soaks up the
foreground, by an inexact augmented Lagrange multiplier method; the fit is
repeated with the residual's pixels down-weighted (reweighting) until the
flatfield stops changing.  This module implements that algorithm from the
paper's description with NumPy and SciPy.

:func:`estimate_flatfield` returns the ``illumination`` special output
(``{"flatfield": 2-D array, "darkfield": 2-D array}``),
:func:`correct_illumination` applies it, and :func:`flatfield_correct` does
both in one step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

import numpy as np

from ._lazy import LazyModule
from .registry import register

scipy_fft = LazyModule("scipy.fft")
transform = LazyModule("skimage.transform")

__all__ = ["correct_illumination", "estimate_flatfield", "flatfield_correct"]

logger = logging.getLogger(__name__)


def _dct(x: np.ndarray) -> np.ndarray:
    return scipy_fft.dctn(x, norm="ortho")


def _idct(x: np.ndarray) -> np.ndarray:
    return scipy_fft.idctn(x, norm="ortho")


def _shrink(x: np.ndarray, threshold: float | np.ndarray) -> np.ndarray:
    """Soft thresholding: the proximal operator of the L1 norm."""
    return np.sign(x) * np.maximum(np.abs(x) - threshold, 0.0)


@dataclass
class _Decomposition:
    low_rank: np.ndarray  # (n, p, q)
    sparse: np.ndarray  # (n, p, q)
    offset: np.ndarray  # (p, q): darkfield


def _decompose(
    data: np.ndarray,
    weight: np.ndarray,
    lambda_flat: float,
    lambda_dark: float,
    darkfield: bool,
    tol: float,
    max_iterations: int,
) -> _Decomposition:
    """Split sorted tiles into smooth low-rank shading and a sparse residual (inexact ALM)."""
    n = data.shape[0]
    rows = data.reshape(n, -1)
    norm_two = float(np.sqrt(np.linalg.eigvalsh(rows @ rows.T)[-1]))  # largest singular value
    mu = 12.5 / norm_two
    mu_max = mu * 1e7
    rho = 1.5
    data_norm = float(np.sqrt(np.square(data).sum()))
    base_dct = np.zeros(data.shape[1:])
    coeff = np.ones(n)
    offset = np.zeros(data.shape[1:])
    sparse = np.zeros_like(data)
    multiplier = np.zeros_like(data)
    floor_offset = 0.0
    dark_limit = float(data.min())
    ent_dark = 10.0
    for _ in range(max_iterations):
        base = _idct(base_dct)
        low_rank = base[None] * coeff[:, None, None] + offset[None]
        step = (data - low_rank - sparse + multiplier / mu).mean(axis=0)
        base_dct = _shrink(base_dct + _dct(step), lambda_flat / mu)
        base = _idct(base_dct)
        low_rank = base[None] * coeff[:, None, None] + offset[None]
        sparse = _shrink(sparse + (data - low_rank - sparse + multiplier / mu), weight / mu)
        residual = data - sparse
        coeff = np.maximum(residual.mean(axis=(1, 2)) / max(residual.mean(), 1e-12), 0.0)
        if darkfield:
            offset, floor_offset = _update_darkfield(
                residual, base, coeff, dark_limit, lambda_dark / (ent_dark * mu)
            )
        gap = data - low_rank - sparse
        multiplier += mu * gap
        mu = min(mu * rho, mu_max)
        if np.sqrt(np.square(gap).sum()) / data_norm < tol:
            break
    return _Decomposition(low_rank, sparse, offset + floor_offset * base)


def _update_darkfield(
    residual: np.ndarray,
    base: np.ndarray,
    coeff: np.ndarray,
    dark_limit: float,
    threshold: float,
) -> tuple[np.ndarray, float]:
    """Estimate the darkfield offset from the dimmer sorted rows (BaSiC's darkfield step)."""
    valid = coeff < 1
    if not valid.any():
        return np.zeros_like(base), 0.0
    bright = base > base.mean() - 1e-6
    dim = base < base.mean() + 1e-6
    rows = residual[valid]
    contrast = (rows[:, bright].mean(axis=1) - rows[:, dim].mean(axis=1)) / max(residual.mean(), 1e-12)
    c = coeff[valid]
    k = c.size
    s_cc, s_c, s_b, s_cb = (c * c).sum(), c.sum(), contrast.sum(), (c * contrast).sum()
    denom = s_c * s_b - k * s_cb
    floor_offset = 0.0 if denom == 0 else float((s_cc * s_b - s_c * s_cb) / denom)
    floor_offset = min(max(floor_offset, 0.0), dark_limit / max(base.mean(), 1e-12))
    shading_offset = floor_offset * base.mean() - floor_offset * base
    raw = rows.mean(axis=0) - c.mean() * base
    raw -= raw.mean()
    offset = _idct(_shrink(_dct(raw - shading_offset), threshold))
    offset = _shrink(offset, threshold) + shading_offset
    return offset, floor_offset


def _estimate(
    stack: np.ndarray,
    smoothness: float,
    darkfield: bool,
    darkfield_smoothness: float,
    working_size: int,
    max_iterations: int,
    max_reweightings: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Return full-size (flatfield, darkfield) of a (N, Y, X) stack."""
    if stack.ndim != 3 or stack.shape[0] < 2:
        raise ValueError(
            f"flatfield estimation needs a (N, Y, X) stack of at least 2 tiles, got {stack.shape}; "
            "stack the sites of a well (variable_components=[SITE])"
        )
    shape = stack.shape[1:]
    size = (min(working_size, shape[0]), min(working_size, shape[1]))
    small = np.stack([
        transform.resize(t.astype(np.float64), size, order=1, anti_aliasing=True, preserve_range=True)
        for t in stack
    ])
    mean_image = small.mean(axis=0)
    mean_image /= max(mean_image.mean(), 1e-12)
    scale = np.abs(_dct(mean_image)).sum() / 400.0
    lambda_flat = 0.5 * scale * smoothness
    lambda_dark = 0.2 * scale * darkfield_smoothness
    data = np.sort(small, axis=0)
    weight = np.ones_like(data)
    flat_last = np.ones(size)
    dark_last = np.zeros(size)
    for _ in range(max_reweightings):
        parts = _decompose(data, weight, lambda_flat, lambda_dark, darkfield, 1e-6, max_iterations)
        level = parts.low_rank.mean(axis=(1, 2))[:, None, None]
        weight = 1.0 / (np.abs(parts.sparse / np.maximum(level, 1e-12)) + 0.1)
        weight *= weight.size / weight.sum()
        shading = parts.low_rank.mean(axis=0) - parts.offset
        flat = shading / max(shading.mean(), 1e-12)
        change_flat = np.abs(flat - flat_last).sum() / np.abs(flat_last).sum()
        diff_dark = np.abs(parts.offset - dark_last).sum()
        change_dark = 0.0 if diff_dark < 1e-7 else diff_dark / max(np.abs(dark_last).sum(), 1e-6)
        flat_last, dark_last = flat, parts.offset
        if max(change_flat, change_dark) <= 1e-3:
            break
    flatfield = transform.resize(flat_last, shape, order=1, preserve_range=True)
    flatfield /= flatfield.mean()
    dark = transform.resize(dark_last, shape, order=1, preserve_range=True) if darkfield else np.zeros(shape)
    return flatfield.astype(np.float32), dark.astype(np.float32)


@register(
    category="Illumination",
    special_outputs=("illumination",),
    keywords=("BaSiC", "shading", "vignetting", "flatfield", "darkfield", "illumination"),
)
def estimate_flatfield(
    stack: np.ndarray,
    *,
    smoothness: Annotated[float, {"min": 0.01, "max": 100.0, "step": 0.1, "above": 0.0}] = 1.0,
    darkfield: bool = False,
    darkfield_smoothness: Annotated[float, {"min": 0.01, "max": 100.0, "step": 0.1, "above": 0.0}] = 1.0,
    working_size: Annotated[int, {"min": 16, "max": 512}] = 128,
    max_iterations: Annotated[int, {"min": 10, "max": 2000}] = 500,
    max_reweightings: Annotated[int, {"min": 1, "max": 50}] = 10,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Estimate the flatfield (and darkfield) of a stack of tiles with BaSiC.

    Every tile is modelled as the true image times one smooth flatfield plus
    one smooth darkfield; foreground (cells) is treated as a sparse residual
    and down-weighted, so the estimate follows the illumination rather than
    the content.  Use many tiles (tens or more, e.g. all sites of a well or
    several wells) with varied content; a handful of tiles gives a rough
    estimate.

    Parameters
    ----------
    stack : ndarray, shape (N, Y, X)
        Tiles of one channel.
    smoothness : float
        Multiplies BaSiC's automatic flatfield regularisation: larger values
        give a smoother flatfield.
    darkfield : bool
        Also estimate an additive darkfield (camera offset and stray light).
        It is identified from how the shading contrast scales with brightness,
        so a uniform background of the sample counts partly as darkfield and
        the estimate can exceed the true offset; subtract a measured dark
        frame instead when one is available.
    darkfield_smoothness : float
        Multiplies the darkfield regularisation.
    working_size : int
        Tiles are shrunk to at most this size for the estimate.
    max_iterations : int
        Iterations of the low-rank/sparse split.
    max_reweightings : int
        Rounds of foreground down-weighting.

    Returns
    -------
    stack : ndarray
        The input stack, unchanged.
    illumination : dict
        ``{"flatfield": (Y, X) float32 with mean 1, "darkfield": (Y, X) float32}``
        (the darkfield is zero when not estimated).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> rng = np.random.default_rng(0)
    >>> yy, xx = np.mgrid[-1:1:64j, -1:1:64j]
    >>> shading = 1.0 - 0.3 * (yy**2 + xx**2)
    >>> scene = 400 + 300 * ndimage.gaussian_filter(rng.normal(size=(16, 64, 64)), (0, 3, 3))
    >>> _, ill = estimate_flatfield((scene * shading).astype(np.uint16))
    >>> ill["flatfield"].shape, round(float(np.corrcoef(ill["flatfield"].ravel(), shading.ravel())[0, 1]), 2)
    ((64, 64), 0.99)
    """
    stack = np.asarray(stack)
    flat, dark = _estimate(
        stack,
        smoothness,
        darkfield,
        darkfield_smoothness,
        working_size,
        max_iterations,
        max_reweightings,
    )
    return stack, {"flatfield": flat, "darkfield": dark}


def _apply(stack: np.ndarray, flatfield: np.ndarray, darkfield: np.ndarray | None) -> np.ndarray:
    if flatfield.shape != stack.shape[1:]:
        raise ValueError(
            f"the flatfield is {flatfield.shape} but the tiles are {stack.shape[1:]}; "
            "estimate it from tiles of the same size"
        )
    corrected = stack.astype(np.float32)
    if darkfield is not None:
        corrected -= np.asarray(darkfield, dtype=np.float32)
    corrected /= np.maximum(np.asarray(flatfield, dtype=np.float32), 1e-6)
    if np.issubdtype(stack.dtype, np.integer):
        info = np.iinfo(stack.dtype)
        return np.clip(np.rint(corrected), info.min, info.max).astype(stack.dtype)
    return corrected.astype(stack.dtype, copy=False)


@register(category="Illumination", special_inputs=("illumination",), keywords=("BaSiC", "shading"))
def correct_illumination(stack: np.ndarray, *, illumination: dict[str, np.ndarray]) -> np.ndarray:
    """Correct tiles with a flatfield (and darkfield): ``(tile - darkfield) / flatfield``.

    Parameters
    ----------
    stack : ndarray, shape (N, Y, X)
        Tiles to correct.
    illumination : dict
        The ``illumination`` output of :func:`estimate_flatfield`:
        ``{"flatfield": (Y, X) array with mean 1, "darkfield": (Y, X) array}``
        (``"darkfield"`` optional).

    Returns
    -------
    ndarray
        Corrected tiles in the input dtype (integers rounded and clipped).

    Examples
    --------
    >>> import numpy as np
    >>> flat = np.array([[0.5, 1.0], [1.0, 1.5]])
    >>> tiles = np.array([[[50, 100], [100, 150]]], dtype=np.uint16)
    >>> correct_illumination(tiles, illumination={"flatfield": flat}).tolist()
    [[[100, 100], [100, 100]]]
    """
    if "flatfield" not in illumination:
        raise ValueError(f"illumination needs a 'flatfield' entry; it has {sorted(illumination)}")
    stack = np.asarray(stack)
    return _apply(stack, np.asarray(illumination["flatfield"]), illumination.get("darkfield"))


@register(category="Illumination", keywords=("BaSiC", "shading", "vignetting", "flatfield"))
def flatfield_correct(
    stack: np.ndarray,
    *,
    smoothness: Annotated[float, {"min": 0.01, "max": 100.0, "step": 0.1, "above": 0.0}] = 1.0,
    darkfield: bool = False,
    working_size: Annotated[int, {"min": 16, "max": 512}] = 128,
) -> np.ndarray:
    """Estimate the flatfield of a stack of tiles with BaSiC and correct them.

    One-step form of :func:`estimate_flatfield` followed by
    :func:`correct_illumination`, for the tiles at hand (e.g. all sites of a
    well and channel).

    Parameters
    ----------
    stack : ndarray, shape (N, Y, X)
        Tiles of one channel.
    smoothness : float
        Larger values give a smoother flatfield.
    darkfield : bool
        Also estimate and subtract a darkfield.
    working_size : int
        Tiles are shrunk to at most this size for the estimate.

    Returns
    -------
    ndarray
        Corrected tiles in the input dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> rng = np.random.default_rng(0)
    >>> yy, xx = np.mgrid[-1:1:64j, -1:1:64j]
    >>> shading = 1.0 - 0.3 * (yy**2 + xx**2)
    >>> scene = 400 + 300 * ndimage.gaussian_filter(rng.normal(size=(16, 64, 64)), (0, 3, 3))
    >>> tiles = (scene * shading).astype(np.uint16)
    >>> out = flatfield_correct(tiles)
    >>> ratio = lambda s: float(s[:, 28:36, 28:36].mean() / s[:, :8, :8].mean())
    >>> round(ratio(tiles), 1), round(ratio(out), 1)
    (1.9, 1.0)
    """
    stack = np.asarray(stack)
    flat, dark = _estimate(stack, smoothness, darkfield, 1.0, working_size, 500, 10)
    return _apply(stack, flat, dark if darkfield else None)
