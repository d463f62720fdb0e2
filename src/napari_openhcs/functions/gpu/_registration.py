"""Pairwise tile registration written once for NumPy and CuPy (twin of :mod:`.._phase_correlation`).

The algorithm is the CPU module's, step for step (phase-correlation candidates
with their FFT wrap alternatives, a coarse NCC search on binned tiles, NCC
hill-climbing and a quadratic subpixel fit); read that module for the why. What
differs is how the normalized cross-correlations (NCC) are evaluated: each batch
of candidate displacements is computed on the array's device and brought back to
the host in one transfer, instead of one scalar at a time, so a GPU does not stall
on every candidate; as in the CPU module, each offset of a pair is computed once.
The phase-correlation surface and the coarse search (one FFT cross-correlation and
summed-area tables for the whole grid) are the CPU module's own functions, which
run on either kind of array.
Overlap areas depend only on shapes and are computed on the host.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._phase_correlation import (
    PairRegistration,
    _coarse_candidates,
    correlation_surface,
    neighbourhood_max,
    quadratic_vertex,
)
from .._xp import get_modules

Offset = tuple[int, int]


def _overlap(a_shape: Sequence[int], b_shape: Sequence[int], offset: Offset) -> tuple[int, int, int, int]:
    dy, dx = int(offset[0]), int(offset[1])
    return (max(0, dy), min(a_shape[0], dy + b_shape[0]), max(0, dx), min(a_shape[1], dx + b_shape[1]))


def ncc_batch(a: Any, b: Any, offsets: Sequence[Offset]) -> tuple[np.ndarray, np.ndarray]:
    """Return the overlap NCC (host float64, ``nan`` where undefined) and area of each offset.

    Equal, offset by offset, to :func:`napari_openhcs.functions._phase_correlation.overlap_ncc`.
    """
    xp, _ = get_modules(a)
    values: list[Any] = []
    areas = np.zeros(len(offsets), dtype=np.int64)
    for i, (dy, dx) in enumerate(offsets):
        y0, y1, x0, x1 = _overlap(a.shape, b.shape, (dy, dx))
        if y1 <= y0 or x1 <= x0:
            values.append(None)
            continue
        pa = a[y0:y1, x0:x1].astype(np.float64)
        pb = b[y0 - dy : y1 - dy, x0 - dx : x1 - dx].astype(np.float64)
        pa -= pa.mean()
        pb -= pb.mean()
        denom = xp.sqrt((pa * pa).sum() * (pb * pb).sum())
        values.append(xp.where(denom > 0, (pa * pb).sum() / xp.where(denom > 0, denom, 1.0), xp.nan))
        areas[i] = pa.size
    out = np.full(len(offsets), np.nan)
    present = [i for i, v in enumerate(values) if v is not None]
    if present:
        stacked = xp.stack([values[i] for i in present])
        out[present] = np.asarray(stacked.tolist(), dtype=np.float64)
    return out, areas


class NccMemo:
    """Overlap NCCs of one pair of tiles, each offset computed once (batches of the missing ones)."""

    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b
        self._seen: dict[Offset, tuple[float, int]] = {}

    def __call__(self, offsets: Sequence[Offset]) -> tuple[np.ndarray, np.ndarray]:
        keys = [(int(o[0]), int(o[1])) for o in offsets]
        missing = list(dict.fromkeys(k for k in keys if k not in self._seen))
        if missing:
            values, areas = ncc_batch(self.a, self.b, missing)
            self._seen.update(zip(missing, zip(values.tolist(), areas.tolist())))
        found = [self._seen[k] for k in keys]
        values_out = np.array([v for v, _ in found], dtype=np.float64)
        return values_out, np.array([n for _, n in found], dtype=np.int64)


def phase_correlation(a: Any, b: Any, *, n_peaks: int = 3) -> list[Offset]:
    """Return the strongest phase-correlation peaks of two same-shaped images (see the CPU module)."""
    xp, _ = get_modules(a)
    if a.shape != b.shape:
        raise ValueError(f"phase correlation needs images of one shape, got {a.shape} and {b.shape}")
    surface = correlation_surface(a, b)
    local_max = surface == neighbourhood_max(surface)
    order = xp.argsort(surface[local_max])[::-1][:n_peaks]
    peaks = xp.argwhere(local_max)[order]
    return [(int(py), int(px)) for py, px in peaks.tolist()]


def _climb(ncc_at: NccMemo, offset: Offset, ncc: float, min_area: float,
           max_steps: int = 64) -> tuple[float, Offset]:
    steps = [(oy, ox) for oy, ox in itertools.product((-1, 0, 1), repeat=2) if oy or ox]
    for _ in range(max_steps):
        cands = [(offset[0] + oy, offset[1] + ox) for oy, ox in steps]
        values, areas = ncc_at(cands)
        scores = [(float(v), c) for v, n, c in zip(values, areas, cands) if np.isfinite(v) and n >= min_area]
        if not scores:
            break
        top, cand = max(scores)
        if top <= ncc:
            break
        ncc, offset = top, cand
    return ncc, offset


def _quadratic_peak(ncc_at: NccMemo, offset: Offset, min_area: float,
                    radius: int = 2) -> tuple[float, float, float]:
    steps = np.arange(-radius, radius + 1)
    gy, gx = (g.ravel() for g in np.meshgrid(steps, steps, indexing="ij"))
    values = np.full(gy.size, np.nan)
    for _ in range(8):
        cands = [(offset[0] + int(oy), offset[1] + int(ox)) for oy, ox in zip(gy, gx)]
        ncc, areas = ncc_at(cands)
        values = np.where(areas >= min_area, ncc, np.nan)
        if not np.isfinite(values).any():
            break
        best = int(np.nanargmax(values))
        if gy[best] == 0 and gx[best] == 0:
            break
        offset = (offset[0] + int(gy[best]), offset[1] + int(gx[best]))
    centre = float(values[gy.size // 2])
    shift = quadratic_vertex(gy, gx, values)
    return offset[0] + float(shift[0]), offset[1] + float(shift[1]), centre


def _no_content(crop: Any, min_contrast: float) -> bool:
    level = max(float(abs(crop).mean()), 1e-12)
    std = float(crop.std())
    return std < min_contrast * level or std == 0.0


def register_pair(a: Any, b: Any, nominal: tuple[float, float], *, max_shift: float, min_quality: float,
                  min_contrast: float, n_peaks: int = 3, min_overlap_fraction: float = 0.25,
                  n_climb: int = 3) -> PairRegistration:
    """Measure the displacement of tile ``b`` relative to tile ``a`` (NumPy or CuPy tiles).

    Same parameters and result as
    :func:`napari_openhcs.functions._phase_correlation.register_pair`.
    """
    nom = float(nominal[0]), float(nominal[1])
    ny, nx = int(round(nom[0])), int(round(nom[1]))
    y0, y1, x0, x1 = _overlap(a.shape, b.shape, (ny, nx))
    if y1 - y0 < 2 or x1 - x0 < 2:
        return PairRegistration(nom[0], nom[1], float("nan"), False, "no overlap")
    ca = a[y0:y1, x0:x1].astype(np.float32)
    cb = b[y0 - ny : y1 - ny, x0 - nx : x1 - nx].astype(np.float32)
    if _no_content(ca, min_contrast) or _no_content(cb, min_contrast):
        return PairRegistration(nom[0], nom[1], float("nan"), False, "no content in overlap")
    min_area = min_overlap_fraction * ca.size
    candidates: set[Offset] = set()
    for py, px in phase_correlation(ca, cb, n_peaks=n_peaks):
        for sy, sx in itertools.product((py, py - ca.shape[0]), (px, px - ca.shape[1])):
            candidates.add((ny + sy, nx + sx))
    candidates.update(_coarse_candidates(a, b, (ny, nx), max_shift, min_area))
    inside = [o for o in candidates if max(abs(o[0] - ny), abs(o[1] - nx)) <= max_shift]
    ncc_at = NccMemo(a, b)
    values, areas = ncc_at(inside)
    scored = [(float(v), o) for v, n, o in zip(values, areas, inside) if n >= min_area and np.isfinite(v)]
    if not scored:
        return PairRegistration(nom[0], nom[1], float("nan"), False, "no valid peak within max_shift_px")
    scored.sort(reverse=True)
    ncc, offset = max(_climb(ncc_at, off, value, min_area) for value, off in scored[:n_climb])
    if ncc < min_quality:
        return PairRegistration(nom[0], nom[1], ncc, False, f"low quality (NCC {ncc:.2f} < {min_quality:g})")
    if max(abs(offset[0] - nom[0]), abs(offset[1] - nom[1])) > max_shift + 0.5:
        return PairRegistration(nom[0], nom[1], ncc, False, f"shift exceeds max_shift_px ({max_shift:g})")
    dy, dx, refined = _quadratic_peak(ncc_at, offset, min_area)
    return PairRegistration(dy, dx, refined if np.isfinite(refined) else ncc, True)
