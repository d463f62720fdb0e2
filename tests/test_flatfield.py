"""Flatfield/darkfield estimation (BaSiC) and illumination correction."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy import ndimage

from napari_openhcs.functions import flatfield as flatfield_module
from napari_openhcs.functions import get_function
from napari_openhcs.functions.flatfield import (
    correct_illumination,
    estimate_flatfield,
    flatfield_correct,
)

TILE = 96
STEP = 72  # 25 % overlap between neighbouring tiles


def vignetting(size: int) -> np.ndarray:
    """An off-centre, anisotropic fall-off to about 40 % at the corners (mean 1)."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    field = np.exp(-((yy - 0.45) ** 2 / (2 * 0.40**2) + (xx - 0.55) ** 2 / (2 * 0.50**2)))
    return field / field.mean()


def shaded_tiles(
    grid: int = 6, darkfield: float = 0.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut a grid of overlapping tiles from one scene of textured background and nuclei.

    Returns the shaded uint16 tiles, the true flatfield and the unshaded tiles.
    """
    rng = np.random.default_rng(seed)
    size = STEP * (grid - 1) + TILE
    scene = 300 + 400 * ndimage.gaussian_filter(rng.normal(size=(size, size)), 4)
    seeds = np.zeros((size, size))
    n = size * size // 700
    seeds[rng.integers(0, size, n), rng.integers(0, size, n)] = rng.uniform(1e5, 3e5, n)
    scene += ndimage.gaussian_filter(seeds, 3)
    flat = vignetting(TILE)
    clean, shaded = [], []
    for r in range(grid):
        for c in range(grid):
            tile = scene[r * STEP : r * STEP + TILE, c * STEP : c * STEP + TILE]
            clean.append(tile)
            shaded.append(tile * flat + darkfield + rng.normal(0, 8, tile.shape))
    tiles = np.clip(np.stack(shaded), 0, 65535).astype(np.uint16)
    return tiles, flat, np.stack(clean)


def seam_mismatch(tiles: np.ndarray, grid: int) -> float:
    """Mean relative difference between neighbouring tiles over their shared pixels."""
    t = tiles.astype(np.float64).reshape(grid, grid, TILE, TILE)
    overlap = TILE - STEP
    horizontal = np.abs(t[:, :-1, :, STEP:] - t[:, 1:, :, :overlap])
    vertical = np.abs(t[:-1, :, STEP:, :] - t[1:, :, :overlap, :])
    return float((horizontal.mean() + vertical.mean()) / 2 / t.mean())


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_estimated_flatfield_matches_the_true_vignetting() -> None:
    tiles, flat, _ = shaded_tiles(grid=6)
    out, illumination = estimate_flatfield(tiles, working_size=64)
    estimate = illumination["flatfield"]
    r = correlation(estimate, flat)
    print(f"\nflatfield correlation with truth: {r:.4f}")
    assert out is tiles
    assert estimate.shape == flat.shape and estimate.dtype == np.float32
    assert r > 0.95
    assert estimate.mean() == pytest.approx(1.0, abs=1e-3)
    assert np.abs(estimate / flat - 1).max() < 0.15


def test_it_is_not_the_blurred_mean_of_the_tiles() -> None:
    """Foreground-robust: bright nuclei crowded in a few tiles do not leak into the flatfield."""
    tiles, flat, _ = shaded_tiles(grid=6, seed=3)
    tiles = tiles.astype(np.float64)
    yy, xx = np.mgrid[0:TILE, 0:TILE]
    blob = 4000.0 * np.exp(-((yy - 25) ** 2 + (xx - 70) ** 2) / (2 * 10.0**2))
    tiles[:6] += blob * flat  # one bright object at the same place in six tiles
    _, illumination = estimate_flatfield(tiles.astype(np.uint16), working_size=64)
    naive = ndimage.gaussian_filter(tiles.mean(axis=0), 8)
    naive /= naive.mean()
    r_basic, r_naive = correlation(illumination["flatfield"], flat), correlation(naive, flat)
    print(f"\ncorrelation with truth: BaSiC {r_basic:.3f}, blurred mean {r_naive:.3f}")
    assert r_basic > 0.95
    assert r_basic > r_naive + 0.02


def test_correction_removes_tile_to_tile_variation() -> None:
    grid = 6
    tiles, _, clean = shaded_tiles(grid=grid, seed=1)
    corrected = flatfield_correct(tiles, working_size=64)
    before, after, ideal = (seam_mismatch(t, grid) for t in (tiles, corrected, clean))
    # the same scene seen by neighbouring tiles: how much their shared pixels differ
    print(f"\nseam mismatch: shaded {before:.3f}, corrected {after:.3f}, unshaded {ideal:.3f}")
    assert corrected.dtype == tiles.dtype and corrected.shape == tiles.shape
    assert after < 0.5 * before
    centre = corrected[:, 40:56, 40:56].mean() / corrected[:, :12, :12].mean()
    truth = clean[:, 40:56, 40:56].mean() / clean[:, :12, :12].mean()
    assert centre == pytest.approx(truth, rel=0.1)


def test_darkfield_follows_an_added_offset() -> None:
    """The darkfield tracks an additive camera offset (on top of a constant bias of the scene)."""
    tiles, flat, _ = shaded_tiles(grid=5, seed=2)
    _, base = estimate_flatfield(tiles, darkfield=True, working_size=48)
    offset = 400.0
    _, raised = estimate_flatfield(tiles + np.uint16(offset), darkfield=True, working_size=48)
    rise = float((raised["darkfield"] - base["darkfield"]).mean())
    print(f"\ndarkfield {base['darkfield'].mean():.1f} -> {raised['darkfield'].mean():.1f} for +{offset}")
    assert rise == pytest.approx(offset, rel=0.1)
    assert correlation(raised["flatfield"], flat) > 0.95
    assert (raised["darkfield"] >= 0).all()
    assert raised["darkfield"].std() < 0.05 * raised["darkfield"].mean()  # smooth, no structure
    assert not estimate_flatfield(tiles, working_size=48)[1]["darkfield"].any()


def test_correct_illumination_formula_and_checks() -> None:
    tiles = np.full((2, 4, 4), 300, dtype=np.uint16)
    flat = np.full((4, 4), 2.0, dtype=np.float32)
    dark = np.full((4, 4), 100.0, dtype=np.float32)
    out = correct_illumination(tiles, illumination={"flatfield": flat, "darkfield": dark})
    assert out.dtype == np.uint16 and (out == 100).all()
    floats = correct_illumination(tiles.astype(np.float32), illumination={"flatfield": flat})
    assert floats.dtype == np.float32 and np.allclose(floats, 150.0)
    with pytest.raises(ValueError, match="flatfield is \\(3, 3\\) but the tiles are \\(4, 4\\)"):
        correct_illumination(tiles, illumination={"flatfield": np.ones((3, 3))})
    with pytest.raises(ValueError, match="needs a 'flatfield' entry"):
        correct_illumination(tiles, illumination={"darkfield": dark})
    with pytest.raises(ValueError, match="at least 2 tiles"):
        estimate_flatfield(tiles[:1])


def test_functions_are_registered_with_their_special_io() -> None:
    assert get_function("estimate_flatfield").special_outputs == ("illumination",)
    assert get_function("correct_illumination").special_inputs == ("illumination",)
    params = {p.name for p in get_function("flatfield_correct").parameters}
    assert params == {"smoothness", "darkfield", "working_size"}


def test_docstring_examples_run() -> None:
    result = doctest.testmod(flatfield_module)
    assert result.attempted > 0 and result.failed == 0
