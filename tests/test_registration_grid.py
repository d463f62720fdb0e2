"""The batched parts of pairwise registration against their offset-by-offset definitions.

The coarse NCC search evaluates a whole grid of displacements at once (an FFT
cross-correlation and summed-area tables) and the phase correlation uses real
FFTs; both must agree with the direct computation within the stated rounding,
and the candidates they give must be those of the exhaustive search.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_openhcs.functions._phase_correlation import (
    _bin,
    _coarse_candidates,
    _cross_power,
    correlation_surface,
    ncc_grid,
    overlap_ncc,
    phase_correlation,
)

#: The agreement :func:`ncc_grid` promises with :func:`overlap_ncc` on tiles in [0, 1].
NCC_TOL = 1e-9


def _textured(shape: tuple[int, int], seed: int, sigma: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = ndimage.gaussian_filter(rng.random(shape), sigma)
    return ((image - image.min()) / np.ptp(image)).astype(np.float32)


def _direct(a: np.ndarray, b: np.ndarray, dys: np.ndarray, dxs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = np.full((dys.size, dxs.size), np.nan)
    areas = np.zeros((dys.size, dxs.size), dtype=np.int64)
    for i, dy in enumerate(dys):
        for j, dx in enumerate(dxs):
            values[i, j], areas[i, j] = overlap_ncc(a, b, (int(dy), int(dx)))
    return values, areas


@pytest.mark.parametrize(("shape_a", "shape_b", "dys", "dxs"), [
    ((60, 80), (60, 80), range(-6, 7), range(50, 75)),   # side neighbours, every overlap width
    ((64, 64), (40, 50), range(-45, 70, 5), range(-55, 70, 5)),  # no overlap at some offsets
    ((33, 47), (51, 29), range(-10, 11), range(-10, 11)),
])
def test_ncc_grid_equals_overlap_ncc_offset_by_offset(shape_a, shape_b, dys, dxs) -> None:
    a, b = _textured(shape_a, 0), _textured(shape_b, 1)
    dys, dxs = np.array(list(dys)), np.array(list(dxs))
    values, areas = ncc_grid(a, b, dys, dxs)
    expected, expected_areas = _direct(a, b, dys, dxs)
    np.testing.assert_array_equal(areas, expected_areas)
    np.testing.assert_array_equal(np.isnan(values), np.isnan(expected))
    assert np.nanmax(np.abs(values - expected)) < NCC_TOL


def test_ncc_grid_gives_nan_where_a_side_is_constant() -> None:
    a = _textured((40, 60), 2)
    b = _textured((40, 60), 3)
    a[:, 45:] = 0.25  # the overlaps of the narrowest offsets hold one value in a
    dys, dxs = np.array([0, 1]), np.array([44, 46, 50])
    values, _ = ncc_grid(a, b, dys, dxs)
    expected, _ = _direct(a, b, dys, dxs)
    np.testing.assert_array_equal(np.isnan(values), np.isnan(expected))
    assert np.isnan(values[:, 1:]).all() and np.isfinite(values[:, 0]).all()


def _exhaustive_coarse(a, b, nominal, max_shift, min_area, grid=16, keep=2):
    """The coarse search as it is defined: every grid point, one overlap NCC each, whole tiles binned."""
    factor = max(1, int(np.ceil(2 * max_shift / grid)))
    ab, bb = _bin(a, factor), _bin(b, factor)
    cy, cx = round(nominal[0] / factor), round(nominal[1] / factor)
    radius = int(max_shift // factor)
    scores = []
    for oy in range(cy - radius, cy + radius + 1):
        for ox in range(cx - radius, cx + radius + 1):
            ncc, area = overlap_ncc(ab, bb, (oy, ox))
            if np.isfinite(ncc) and area * factor * factor >= min_area:
                scores.append((ncc, (oy * factor, ox * factor)))
    scores.sort(reverse=True)
    return [offset for _, offset in scores[:keep]], scores


@pytest.mark.parametrize(("nominal", "true"),
                         [((0, 230), (3, 226)), ((230, 0), (-4, 233)), ((231, 2), (228, -3))])
@pytest.mark.parametrize("max_shift", [8.0, 20.0, 50.0])
def test_coarse_candidates_are_those_of_the_exhaustive_search(nominal, true, max_shift) -> None:
    canvas = _textured((520, 520), 4, sigma=3.0)
    a = canvas[20:276, 20:276]
    b = canvas[20 + true[0] : 276 + true[0], 20 + true[1] : 276 + true[1]]
    min_area = 0.25 * 256 * 26
    got = _coarse_candidates(a, b, nominal, max_shift, min_area)
    expected, scores = _exhaustive_coarse(a, b, nominal, max_shift, min_area)
    assert len(got) == len(expected) == 2
    # the batched NCCs may only swap grid points whose NCCs tie within NCC_TOL
    ncc_of = {offset: value for value, offset in scores}
    for g, e in zip(got, expected):
        assert g == e or abs(ncc_of[g] - ncc_of[e]) < NCC_TOL


def test_binning_a_crop_gives_the_blocks_of_the_whole_tile() -> None:
    image = _textured((100, 90), 5)
    whole = _bin(image, 7)
    np.testing.assert_array_equal(_bin(image[21:77, 14:84], 7), whole[3:11, 2:12])
    np.testing.assert_allclose(whole, image[:98, :84].reshape(14, 7, 12, 7).mean(axis=(1, 3)), rtol=1e-6)


@pytest.mark.parametrize("shape", [(102, 1024), (1024, 102), (64, 63), (31, 40)])
def test_correlation_surface_equals_the_complex_inverse_transform(shape) -> None:
    a, b = _textured(shape, 6), _textured(shape, 7)
    b = np.roll(a, (3, -5), axis=(0, 1)) * 0.7 + 0.3 * b
    window = np.outer(np.hanning(shape[0]), np.hanning(shape[1])).astype(np.float32)
    fa, fb = np.fft.fft2((a - a.mean()) * window), np.fft.fft2((b - b.mean()) * window)
    cross = fa * np.conj(fb)
    magnitude = np.abs(cross)
    cross /= np.maximum(magnitude, magnitude.max() * 1e-9 + 1e-30)
    full = np.abs(np.fft.ifft2(cross))
    surface = correlation_surface(a, b)
    assert surface.shape == full.shape
    assert np.abs(surface - full).max() < 1e-6 * full.max()
    assert _cross_power(a, b).shape == (shape[0], shape[1] // 2 + 1)
    peak = np.unravel_index(np.argmax(full), full.shape)
    assert phase_correlation(a, b, n_peaks=1)[0] == tuple(int(v) for v in peak)
