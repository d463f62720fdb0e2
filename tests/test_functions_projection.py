"""Projections (max, mean, min, sum, std, best focus) and the channel composite."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import disk

from napari_openhcs.functions.composite import composite
from napari_openhcs.functions.projection import (
    best_focus_pixel,
    best_focus_plane,
    focus_scores,
    max_projection,
    mean_projection,
    min_projection,
    std_projection,
    sum_projection,
)


def nuclei_plane(shape: tuple[int, int] = (96, 96), seed: int = 0) -> np.ndarray:
    """A sharp plane of textured nuclei (float, noise-free)."""
    rng = np.random.default_rng(seed)
    image = np.zeros(shape)
    for _ in range(12):
        centre = rng.integers(10, shape[0] - 10), rng.integers(10, shape[1] - 10)
        image[disk(centre, rng.integers(5, 9), shape=shape)] = rng.uniform(800, 1500)
    texture = 1 + 0.3 * ndi.gaussian_filter(rng.normal(size=shape), 1)
    return image * texture


def z_stack(focus: int, n: int = 7, shape: tuple[int, int] = (96, 96), seed: int = 0) -> np.ndarray:
    """A uint16 z-stack whose plane ``focus`` is in focus; blur grows with the distance from it."""
    rng = np.random.default_rng(seed + 100)
    sharp = nuclei_plane(shape, seed)
    planes = [ndi.gaussian_filter(sharp, 0.3 + 1.2 * abs(z - focus)) for z in range(n)]
    return rng.poisson(np.stack(planes) + 150).astype(np.uint16)


@pytest.fixture
def stack() -> np.ndarray:
    return z_stack(focus=2, n=5)


@pytest.mark.parametrize(
    ("func", "reference", "dtype"),
    [
        (max_projection, np.max, np.uint16),
        (min_projection, np.min, np.uint16),
        (mean_projection, np.mean, np.float32),
        (sum_projection, np.sum, np.float32),
        (std_projection, np.std, np.float32),
    ],
)
def test_projections_reduce_to_one_slice(stack: np.ndarray, func, reference, dtype) -> None:
    out = func(stack)
    assert out.shape == (1, *stack.shape[1:]) and out.dtype == dtype
    np.testing.assert_allclose(out[0], reference(stack.astype(np.float64), axis=0), rtol=1e-5)


def test_sum_projection_does_not_overflow() -> None:
    stack = np.full((40, 4, 4), 65535, dtype=np.uint16)
    assert sum_projection(stack)[0, 0, 0] == 40 * 65535


@pytest.mark.parametrize("focus", [0, 3, 6])
def test_best_focus_plane_picks_the_sharpest_plane(focus: int) -> None:
    stack = z_stack(focus=focus, seed=focus)
    scores = focus_scores(stack)
    assert int(np.argmax(scores)) == focus
    out = best_focus_plane(stack)
    assert out.dtype == np.uint16 and out.shape == (1, 96, 96)
    np.testing.assert_array_equal(out[0], stack[focus])


def test_best_focus_pixel_combines_the_sharp_halves() -> None:
    left = z_stack(focus=1, n=4, seed=1)
    right = z_stack(focus=3, n=4, seed=1)
    stack = np.concatenate([left[:, :, :48], right[:, :, 48:]], axis=2)
    out = best_focus_pixel(stack, window=9)
    assert out.dtype == np.uint16 and out.shape == (1, 96, 96)
    # every pixel comes from one of the planes
    assert np.all((out == stack).any(axis=0))
    # on the nuclei (where there is detail to be sharp), from the in-focus plane of each half
    objects = ndi.binary_dilation(nuclei_plane(seed=1) > 0, iterations=2)
    left_objects, right_objects = objects.copy(), objects.copy()
    left_objects[:, 40:] = False
    right_objects[:, :56] = False
    assert np.mean((out[0] == stack[1])[left_objects]) > 0.9
    assert np.mean((out[0] == stack[3])[right_objects]) > 0.9


def test_best_focus_pixel_of_a_single_plane_is_that_plane(stack: np.ndarray) -> None:
    np.testing.assert_array_equal(best_focus_pixel(stack[:1]), stack[:1])


def test_composite_weighted_mean() -> None:
    stack = np.stack([np.full((4, 4), 100), np.full((4, 4), 400), np.full((4, 4), 1000)]).astype(np.uint16)
    out = composite(stack)
    assert out.shape == (1, 4, 4) and out.dtype == np.float32
    assert out[0, 0, 0] == pytest.approx(500)
    assert composite(stack, weights=(1, 1, 0))[0, 0, 0] == pytest.approx(250)
    assert composite(stack, weights=(2.0, 1.0, 1.0))[0, 0, 0] == pytest.approx(400)


def test_composite_normalize_balances_dim_and_bright_channels() -> None:
    dim = nuclei_plane(seed=3) * 0.05 + 100
    bright = nuclei_plane(seed=4) * 10 + 100
    stack = np.stack([dim, bright]).astype(np.uint16)
    plain = composite(stack)[0]
    balanced = composite(stack, normalize=True)[0]
    dim_only = (dim > 150) & (bright < 150)
    assert balanced.max() <= 1.0
    # normalized, the dim channel's nuclei are as visible as the bright channel's
    assert balanced[dim_only].mean() > 0.3
    assert plain[dim_only].mean() < 0.05 * plain.max()


@pytest.mark.parametrize("band_bytes", [8 * 3 * 1001, 8 * 1001, 1 << 20])
def test_composite_in_bands_equals_the_whole_image_sum(monkeypatch, band_bytes) -> None:
    # bands of 3 rows, of 1 row and one band for the whole image: the same float64 sum
    from napari_openhcs.functions import composite as composite_module

    monkeypatch.setattr(composite_module, "_BAND_BYTES", band_bytes)
    rng = np.random.default_rng(5)
    stack = rng.integers(0, 65535, size=(3, 37, 1001)).astype(np.uint16)
    weights = (2.0, 0.0, 0.7)
    expected = (2.0 * stack[0].astype(np.float64) + 0.7 * stack[2].astype(np.float64)) / 2.7
    out = composite(stack, weights=weights)
    assert out.shape == (1, 37, 1001) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], expected.astype(np.float32))


@pytest.mark.parametrize("weights", [(1.0,), (1.0, 2.0, 3.0, 4.0), (0.0, 0.0, 0.0), (1.0, -1.0, 1.0)])
def test_composite_rejects_bad_weights(weights) -> None:
    with pytest.raises(ValueError, match="weight"):
        composite(np.zeros((3, 4, 4), np.uint16), weights=weights)
