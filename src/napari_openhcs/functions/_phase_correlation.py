"""Pairwise tile registration: phase correlation, NCC check, subpixel refinement.

The displacement of tile ``b`` relative to tile ``a`` is the offset of ``b``'s
top-left origin from ``a``'s, ``(dy, dx)`` in pixels, image-y down.  Starting
from the nominal (stage) displacement:

1. both tiles are cropped to their nominal overlap, and phase correlation of
   the crops gives candidate shifts; each peak ``p`` also stands for ``p - n``
   (the FFT wrap ambiguity), so every combination is a candidate.  An
   exhaustive NCC search on binned tiles adds the best coarse candidates, so
   that the true shift is among them even where phase correlation is fooled
   (little or periodic structure in the overlap);
2. each candidate is scored by the normalized cross-correlation (NCC) of the
   real overlap of the two tiles, and the best ones are moved uphill on that
   NCC to its local maximum (a narrow, windowed crop biases the phase peak
   towards the nominal shift when the stage error is a large part of the
   overlap);
3. the integer maximum is refined to subpixel precision by a parabolic fit of
   the NCC over its 3 x 3 neighbourhood.  On blurred, noisy fluorescence-like
   tiles this is several times more accurate than upsampling the
   phase-correlation peak, whose whitened spectrum is dominated by noise at
   high frequencies.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._xp import get_modules

__all__ = ["PairRegistration", "correlation_surface", "ncc_grid", "overlap_ncc", "phase_correlation",
           "register_pair"]


@dataclass(frozen=True)
class PairRegistration:
    """Result of registering one pair of tiles.

    Attributes
    ----------
    dy, dx : float
        Measured displacement of tile ``b``'s origin from tile ``a``'s (px);
        the nominal displacement when ``ok`` is false.
    quality : float
        NCC of the real overlap at the measured shift (``nan`` when not measured).
    ok : bool
        Whether the measurement passed every check.
    reason : str
        Why the pair falls back to the nominal displacement (empty when ``ok``).
    """

    dy: float
    dx: float
    quality: float
    ok: bool
    reason: str = ""


def _hann(shape: tuple[int, int]) -> np.ndarray:
    wy = np.hanning(shape[0]) if shape[0] > 2 else np.ones(shape[0])
    wx = np.hanning(shape[1]) if shape[1] > 2 else np.ones(shape[1])
    return np.outer(wy, wx).astype(np.float32)


def _cross_power(a: Any, b: Any) -> Any:
    """Return the normalized cross-power half-spectrum (``rfft2``) of two windowed, mean-free images.

    The images are real, so half of the spectrum holds all of it; the surface is
    ``irfft2`` of this (the real part of the full spectrum's ``ifft2``, half the work).
    NumPy or CuPy arrays.
    """
    xp, _ = get_modules(a)
    window = xp.asarray(_hann(tuple(a.shape)))
    fa = xp.fft.rfft2((a - a.mean()) * window)
    fb = xp.fft.rfft2((b - b.mean()) * window)
    cross = fa * xp.conj(fb)
    magnitude = xp.abs(cross)
    cross /= xp.maximum(magnitude, magnitude.max() * 1e-9 + 1e-30)
    return cross


def correlation_surface(a: Any, b: Any) -> Any:
    """Return the phase-correlation surface of two same-shaped real images (NumPy or CuPy).

    ``abs`` of the inverse transform of the normalized cross-power spectrum, computed
    with real FFTs: equal to ``abs(ifft2(...))`` of the full complex spectrum within
    float32 rounding (a few 1e-7 of the peak).
    """
    xp, _ = get_modules(a)
    return xp.abs(xp.fft.irfft2(_cross_power(a, b), s=tuple(a.shape)))


def phase_correlation(a: np.ndarray, b: np.ndarray, *, n_peaks: int = 3) -> list[tuple[int, int]]:
    """Return the strongest phase-correlation peaks of two same-shaped images.

    A peak ``(sy, sx)`` means ``b(y, x) ≈ a(y + sy, x + sx)``, modulo the image
    shape (the FFT cannot tell ``s`` from ``s - n``).  Both images are
    Hann-windowed so that their borders do not produce a spurious peak at zero.

    Parameters
    ----------
    a, b : ndarray
        2-D images of the same shape.
    n_peaks : int
        Number of distinct peaks to return, strongest first.

    Returns
    -------
    list of (int, int)
        Peak positions in ``[0, ny) x [0, nx)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> from scipy import ndimage
    >>> img = ndimage.gaussian_filter(rng.normal(size=(80, 80)), 2)
    >>> peaks = phase_correlation(img[10:74, 5:69], img[13:77, 3:67])
    >>> peaks[0]
    (3, 62)
    """
    if a.shape != b.shape:
        raise ValueError(f"phase correlation needs images of one shape, got {a.shape} and {b.shape}")
    surface = correlation_surface(a, b)
    # local maxima, strongest first; a 3x3 neighbourhood keeps one pixel per peak
    local_max = surface == neighbourhood_max(surface)
    order = np.argsort(surface[local_max])[::-1][:n_peaks]
    return [(int(py), int(px)) for py, px in np.argwhere(local_max)[order]]


def neighbourhood_max(surface: Any) -> Any:
    """Return the maximum of each pixel's 3 x 3 neighbourhood, wrapping around the edges.

    Equal to ``scipy.ndimage.maximum_filter(surface, size=3, mode="wrap")`` (a
    periodic surface such as a phase correlation's), as two 1-D passes; a CuPy
    surface stays on its device.

    Examples
    --------
    >>> import numpy as np
    >>> neighbourhood_max(np.array([[0, 0, 0, 0], [0, 5, 0, 0], [0, 0, 0, 7]]))
    array([[7, 5, 7, 7],
           [7, 5, 7, 7],
           [7, 5, 7, 7]])
    """
    xp, _ = get_modules(surface)
    out = xp.asarray(surface)
    for axis in range(out.ndim):
        out = xp.maximum(xp.maximum(out, xp.roll(out, 1, axis)), xp.roll(out, -1, axis))
    return out


def overlap_ncc(a: np.ndarray, b: np.ndarray, offset: tuple[int, int]) -> tuple[float, int]:
    """Return the NCC of two tiles over their overlap and the overlap area.

    Parameters
    ----------
    a, b : ndarray
        2-D tiles (any shapes).
    offset : (int, int)
        Origin of ``b`` relative to ``a`` (px).

    Returns
    -------
    ncc : float
        Normalized cross-correlation in ``[-1, 1]`` (``nan`` without overlap or
        when either side is constant).
    area : int
        Number of overlapping pixels.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> canvas = rng.normal(size=(40, 70))
    >>> ncc, area = overlap_ncc(canvas[:, :40], canvas[:, 25:65], (0, 25))
    >>> round(ncc, 3), area
    (1.0, 600)
    """
    dy, dx = int(offset[0]), int(offset[1])
    y0, y1 = max(0, dy), min(a.shape[0], dy + b.shape[0])
    x0, x1 = max(0, dx), min(a.shape[1], dx + b.shape[1])
    if y1 <= y0 or x1 <= x0:
        return float("nan"), 0
    pa = a[y0:y1, x0:x1].astype(np.float64)
    pb = b[y0 - dy : y1 - dy, x0 - dx : x1 - dx].astype(np.float64)
    pa -= pa.mean()
    pb -= pb.mean()
    denom = np.sqrt((pa * pa).sum() * (pb * pb).sum())
    if denom <= 0:
        return float("nan"), pa.size
    return float((pa * pb).sum() / denom), int(pa.size)


class _NccMemo:
    """:func:`overlap_ncc` of one pair of tiles, remembered per offset.

    Climbing from several candidates and the quadratic fit around the maximum
    visit many offsets more than once; each is computed once.
    """

    def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
        self.a, self.b = a, b
        self._seen: dict[tuple[int, int], tuple[float, int]] = {}

    def __call__(self, offset: tuple[int, int]) -> tuple[float, int]:
        key = (int(offset[0]), int(offset[1]))
        value = self._seen.get(key)
        if value is None:
            value = self._seen[key] = overlap_ncc(self.a, self.b, key)
        return value


def _crop_overlap(
    a: np.ndarray, b: np.ndarray, nominal: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Crop both tiles to their overlap at the integer nominal displacement."""
    dy, dx = nominal
    y0, y1 = max(0, dy), min(a.shape[0], dy + b.shape[0])
    x0, x1 = max(0, dx), min(a.shape[1], dx + b.shape[1])
    if y1 - y0 < 2 or x1 - x0 < 2:
        return None
    return a[y0:y1, x0:x1], b[y0 - dy : y1 - dy, x0 - dx : x1 - dx]


def _climb(
    a: np.ndarray,
    b: np.ndarray,
    offset: tuple[int, int],
    ncc: float,
    min_area: float,
    max_steps: int = 64,
    ncc_at: _NccMemo | None = None,
) -> tuple[float, tuple[int, int]]:
    """Move an integer displacement uphill on the overlap NCC to its local maximum.

    Phase correlation of a narrow overlap can miss the true peak by a few
    pixels when the stage error is a large part of the overlap; the NCC of the
    real overlap has no such bias.
    """
    ncc_at = ncc_at or _NccMemo(a, b)
    for _ in range(max_steps):
        scores = []
        for oy, ox in itertools.product((-1, 0, 1), repeat=2):
            if oy or ox:
                cand = (offset[0] + oy, offset[1] + ox)
                value, area = ncc_at(cand)
                if np.isfinite(value) and area >= min_area:
                    scores.append((value, cand))
        if not scores:
            break
        top, cand = max(scores)
        if top <= ncc:
            break
        ncc, offset = top, cand
    return ncc, offset


def _bin(image: Any, factor: int) -> Any:
    """Return ``image`` averaged over ``factor x factor`` blocks (edges trimmed), float32.

    Rows are summed first, then columns (two contiguous reductions); NumPy or CuPy.
    """
    if factor == 1:
        return image.astype(np.float32)
    h, w = image.shape[0] // factor, image.shape[1] // factor
    rows = image[: h * factor, : w * factor].astype(np.float32).reshape(h, factor, w * factor).sum(axis=1)
    return rows.reshape(h, w, factor).sum(axis=2) * np.float32(1.0 / (factor * factor))


def _reach(offsets: np.ndarray, n_a: int, n_b: int) -> tuple[int, int, int, int]:
    """Along one axis: the parts of ``a`` and ``b`` that overlap at any of ``offsets``.

    Returns ``(a0, a1, b0, b1)``; empty ranges when no offset overlaps.
    """
    lo, hi = int(offsets.min()), int(offsets.max())
    a0, a1 = min(max(lo, 0), n_a), min(max(hi + n_b, 0), n_a)
    b0, b1 = min(max(-hi, 0), n_b), min(max(n_a - lo, 0), n_b)
    return a0, a1, b0, b1


def _coarse_candidates(
    a: Any,
    b: Any,
    nominal: tuple[int, int],
    max_shift: float,
    min_area: float,
    grid: int = 16,
    keep: int = 2,
) -> list[tuple[int, int]]:
    """Return the best displacements of an exhaustive NCC search on binned tiles.

    The search covers ``nominal ± max_shift`` on a grid of at most
    ``(grid + 1)²`` points (tiles binned so that one step is one binned
    pixel).  It finds the true overlap when phase correlation does not, e.g.
    when the overlap holds little but periodic structure.  Only the parts of the
    tiles that some grid point overlaps are binned, and the NCC of every grid point
    comes from one cross-correlation and four summed-area tables
    (:func:`ncc_grid`); NumPy or CuPy tiles.
    """
    factor = max(1, int(np.ceil(2 * max_shift / grid)))
    cy, cx = round(nominal[0] / factor), round(nominal[1] / factor)
    radius = int(max_shift // factor)
    span = np.arange(-radius, radius + 1)
    dys, dxs = cy + span, cx + span
    ya0, ya1, yb0, yb1 = _reach(dys, a.shape[0] // factor, b.shape[0] // factor)
    xa0, xa1, xb0, xb1 = _reach(dxs, a.shape[1] // factor, b.shape[1] // factor)
    if ya1 <= ya0 or xa1 <= xa0:
        return []
    f = factor
    ab = _bin(a[ya0 * f : ya1 * f, xa0 * f : xa1 * f], f)
    bb = _bin(b[yb0 * f : yb1 * f, xb0 * f : xb1 * f], f)
    values, areas = ncc_grid(ab, bb, dys - ya0 + yb0, dxs - xa0 + xb0)
    ok = np.isfinite(values) & (areas * f * f >= min_area)
    scores = [(float(values[i, j]), (int(dys[i]) * f, int(dxs[j]) * f)) for i, j in zip(*np.nonzero(ok))]
    scores.sort(reverse=True)
    return [offset for _, offset in scores[:keep]]


#: A side of an overlap whose variance is below this fraction of its mean square counts
#: as constant in :func:`ncc_grid` (rounding of the summed-area tables, not a contrast).
_FLAT = 1e-12


def ncc_grid(a: Any, b: Any, dys: np.ndarray, dxs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return :func:`overlap_ncc` of two tiles at every offset ``(dys[i], dxs[j])``, and the areas.

    Computed at once rather than offset by offset: the products of the two tiles
    summed over every overlap come from one zero-padded FFT cross-correlation, the
    sums and sums of squares of each side from summed-area tables, all in float64 on
    the tiles' device (NumPy or CuPy), each tile first made mean-free (NCC does not
    change). The values agree with :func:`overlap_ncc` within rounding (a few 1e-12
    on tiles in [0, 1]); a side whose variance is below ``1e-12`` of its mean square
    counts as constant (``nan``, as :func:`overlap_ncc` gives for an exactly constant
    side).

    Returns
    -------
    ncc : ndarray of float64, shape (len(dys), len(dxs))
        Host array; ``nan`` without overlap or with a constant side.
    area : ndarray of int64, shape (len(dys), len(dxs))
        Overlapping pixels.
    """
    xp, _ = get_modules(a)
    a = xp.asarray(a, dtype=xp.float64)
    b = xp.asarray(b, dtype=xp.float64)
    a = a - a.mean()
    b = b - b.mean()
    (h1, w1), (h2, w2) = a.shape, b.shape
    dys, dxs = np.asarray(dys, dtype=np.intp), np.asarray(dxs, dtype=np.intp)
    ya0, ya1 = np.clip(dys, 0, h1), np.clip(dys + h2, 0, h1)
    xa0, xa1 = np.clip(dxs, 0, w1), np.clip(dxs + w2, 0, w1)
    heights, widths = np.maximum(ya1 - ya0, 0), np.maximum(xa1 - xa0, 0)
    area = heights[:, None] * widths[None, :]
    yb0, xb0 = np.clip(ya0 - dys, 0, h2), np.clip(xa0 - dxs, 0, w2)  # clipped: no overlap
    yb1, xb1 = yb0 + heights, xb0 + widths

    def box(table: Any, y0: np.ndarray, y1: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        y0, y1 = xp.asarray(y0)[:, None], xp.asarray(y1)[:, None]
        x0, x1 = xp.asarray(x0)[None, :], xp.asarray(x1)[None, :]
        return table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]

    def summed(image: Any) -> Any:
        table = xp.zeros((image.shape[0] + 1, image.shape[1] + 1))
        table[1:, 1:] = image.cumsum(axis=0).cumsum(axis=1)
        return table

    sa, saa = box(summed(a), ya0, ya1, xa0, xa1), box(summed(a * a), ya0, ya1, xa0, xa1)
    sb, sbb = box(summed(b), yb0, yb1, xb0, xb1), box(summed(b * b), yb0, yb1, xb0, xb1)
    shape = (h1 + h2, w1 + w2)
    corr = xp.fft.irfft2(xp.fft.rfft2(a, s=shape) * xp.conj(xp.fft.rfft2(b, s=shape)), s=shape)
    sab = corr[xp.asarray(dys % shape[0])[:, None], xp.asarray(dxs % shape[1])[None, :]]
    n = xp.asarray(np.maximum(area, 1), dtype=xp.float64)
    var_a, var_b = saa - sa * sa / n, sbb - sb * sb / n
    flat = (var_a <= _FLAT * saa) | (var_b <= _FLAT * sbb) | xp.asarray(area == 0)
    denom = xp.sqrt(xp.where(flat, 1.0, var_a * var_b))
    ncc = xp.where(flat, xp.nan, (sab - sa * sb / n) / denom)
    return np.asarray(ncc.get() if hasattr(ncc, "get") else ncc, dtype=np.float64), area.astype(np.int64)


def _quadratic_peak(
    a: np.ndarray,
    b: np.ndarray,
    offset: tuple[int, int],
    min_area: float,
    radius: int = 2,
    ncc_at: _NccMemo | None = None,
) -> tuple[float, float, float]:
    """Refine an NCC maximum by a least-squares quadratic over its neighbourhood.

    The overlap NCC is sampled on the ``(2 * radius + 1)²`` integer
    displacements around ``offset`` (re-centred while a neighbour scores
    higher, which also steps off small noise maxima), and a 2-D quadratic
    fitted to the samples has its vertex at the subpixel displacement.
    Fitting 25 samples instead of three per axis averages out the noise of
    low-contrast overlaps.

    Returns
    -------
    dy, dx, ncc : float
        Subpixel displacement and the NCC at the integer maximum.
    """
    ncc_at = ncc_at or _NccMemo(a, b)
    steps = np.arange(-radius, radius + 1)
    gy, gx = (g.ravel() for g in np.meshgrid(steps, steps, indexing="ij"))
    values = np.full(gy.size, np.nan)
    for _ in range(8):
        for i, (oy, ox) in enumerate(zip(gy, gx)):
            ncc, area = ncc_at((offset[0] + int(oy), offset[1] + int(ox)))
            values[i] = ncc if area >= min_area else np.nan
        if not np.isfinite(values).any():
            break
        best = int(np.nanargmax(values))
        if gy[best] == 0 and gx[best] == 0:
            break
        offset = (offset[0] + int(gy[best]), offset[1] + int(gx[best]))
    centre = float(values[gy.size // 2])
    shift = quadratic_vertex(gy, gx, values)
    return offset[0] + float(shift[0]), offset[1] + float(shift[1]), centre


def quadratic_vertex(gy: np.ndarray, gx: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Vertex ``(dy, dx)`` of a 2-D quadratic fitted to NCC samples at offsets ``(gy, gx)``.

    Non-finite samples are left out; with fewer than 6 samples, or a fit that is not
    a maximum, the vertex is ``(0, 0)``. It is clipped to one pixel per axis.
    """
    ok = np.isfinite(values)
    shift = np.zeros(2)
    if ok.sum() >= 6:
        design = np.stack([np.ones(gy.size), gy, gx, gy * gy, gy * gx, gx * gx], axis=1)
        c = np.linalg.lstsq(design[ok], values[ok], rcond=None)[0]
        hessian = np.array([[2 * c[3], c[4]], [c[4], 2 * c[5]]])
        if np.all(np.linalg.eigvalsh(hessian) < 0):
            shift = np.clip(np.linalg.solve(hessian, -c[1:3]), -1.0, 1.0)
    return shift


def register_pair(
    a: np.ndarray,
    b: np.ndarray,
    nominal: tuple[float, float],
    *,
    max_shift: float,
    min_quality: float,
    min_contrast: float,
    n_peaks: int = 3,
    min_overlap_fraction: float = 0.25,
    n_climb: int = 3,
) -> PairRegistration:
    """Measure the displacement of tile ``b`` relative to tile ``a``.

    Parameters
    ----------
    a, b : ndarray
        2-D tiles of one shape.
    nominal : (float, float)
        Expected displacement of ``b``'s origin from ``a``'s (px), e.g. from
        the stage positions.
    max_shift : float
        Largest accepted deviation from ``nominal`` per axis (px).
    min_quality : float
        Smallest accepted NCC of the overlap at the measured shift.
    min_contrast : float
        Smallest accepted ratio of the overlap's standard deviation (in either
        tile) to its mean absolute intensity; flatter overlaps have "no content".
    n_peaks : int
        Phase-correlation peaks checked with NCC.
    min_overlap_fraction : float
        Candidate shifts leaving less than this fraction of the nominal overlap
        area are not considered.
    n_climb : int
        Best-scoring candidates moved uphill on the NCC before the best is kept.

    Returns
    -------
    PairRegistration
        The measured displacement, or the nominal one with the reason.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> from scipy import ndimage
    >>> canvas = ndimage.gaussian_filter(rng.normal(size=(64, 160)), 1.5) + 5
    >>> a, b = canvas[:60, :96], canvas[2:62, 70:160]
    >>> r = register_pair(a, b, (0, 72), max_shift=8, min_quality=0.5, min_contrast=0.01)
    >>> r.ok, round(r.dy, 1), round(r.dx, 1), round(r.quality, 2)
    (True, 2.0, 70.0, 1.0)
    """
    ny, nx = int(round(nominal[0])), int(round(nominal[1]))
    crops = _crop_overlap(a, b, (ny, nx))
    if crops is None:
        return PairRegistration(float(nominal[0]), float(nominal[1]), float("nan"), False, "no overlap")
    ca, cb = (c.astype(np.float32) for c in crops)
    for crop in (ca, cb):
        level = max(float(np.abs(crop).mean()), 1e-12)
        if float(crop.std()) < min_contrast * level or float(crop.std()) == 0.0:
            return PairRegistration(
                float(nominal[0]), float(nominal[1]), float("nan"), False, "no content in overlap"
            )
    min_area = min_overlap_fraction * ca.size
    candidates: set[tuple[int, int]] = set()
    for py, px in phase_correlation(ca, cb, n_peaks=n_peaks):
        for sy, sx in itertools.product((py, py - ca.shape[0]), (px, px - ca.shape[1])):
            candidates.add((ny + sy, nx + sx))
    candidates.update(_coarse_candidates(a, b, (ny, nx), max_shift, min_area))
    ncc_at = _NccMemo(a, b)
    scored = []
    for offset in candidates:
        if max(abs(offset[0] - ny), abs(offset[1] - nx)) > max_shift:
            continue
        ncc, area = ncc_at(offset)
        if area >= min_area and np.isfinite(ncc):
            scored.append((ncc, offset))
    if not scored:
        return PairRegistration(
            float(nominal[0]), float(nominal[1]), float("nan"), False, "no valid peak within max_shift_px"
        )
    scored.sort(reverse=True)
    ncc, offset = max(_climb(a, b, off, value, min_area, ncc_at=ncc_at) for value, off in scored[:n_climb])
    if ncc < min_quality:
        return PairRegistration(
            float(nominal[0]),
            float(nominal[1]),
            ncc,
            False,
            f"low quality (NCC {ncc:.2f} < {min_quality:g})",
        )
    if max(abs(offset[0] - nominal[0]), abs(offset[1] - nominal[1])) > max_shift + 0.5:
        return PairRegistration(
            float(nominal[0]),
            float(nominal[1]),
            ncc,
            False,
            f"shift exceeds max_shift_px ({max_shift:g})",
        )
    dy, dx, refined = _quadratic_peak(a, b, offset, min_area, ncc_at=ncc_at)
    return PairRegistration(dy, dx, refined if np.isfinite(refined) else ncc, True)
