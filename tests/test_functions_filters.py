"""Smoothing, sharpening, CLAHE and background subtraction (top-hat, rolling ball)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import disk

from napari_openhcs.functions.background import block_mean, rolling_ball, shrink_factor, tophat
from napari_openhcs.functions.filters import clahe, gaussian_blur, median_filter, unsharp_mask


def spots_on_background(shape: tuple[int, int] = (192, 256), seed: int = 0,
                        noise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Small +800 spots (radius 5) on a smooth 400-700 vignetted background; returns (image, spot mask)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    background = 400 + 300 * np.exp(-(((yy - 80) / 120.0) ** 2 + ((xx - 150) / 160.0) ** 2))
    spots = np.zeros(shape, bool)
    for _ in range(25):
        spots[disk((rng.integers(10, shape[0] - 10), rng.integers(10, shape[1] - 10)), 5, shape=shape)] = True
    expected = background + 800 * spots
    image = rng.poisson(expected) if noise else np.rint(expected)
    return image.astype(np.uint16), spots


@pytest.fixture
def noisy() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.poisson(np.full((2, 48, 64), 300.0)).astype(np.uint16)


def test_gaussian_blur_smooths_and_keeps_dtype(noisy: np.ndarray) -> None:
    out = gaussian_blur(noisy, sigma=2)
    assert out.dtype == np.uint16 and out.shape == noisy.shape
    assert out.std() < noisy.std() / 3
    assert abs(float(out.mean()) - float(noisy.mean())) < 2
    np.testing.assert_array_equal(gaussian_blur(noisy, sigma=0), noisy)
    assert gaussian_blur(noisy.astype(np.float32), sigma=1).dtype == np.float32


def test_gaussian_blur_does_not_mix_slices() -> None:
    stack = np.zeros((2, 16, 16), np.uint16)
    stack[1] = 1000
    out = gaussian_blur(stack, sigma=3)
    assert out[0].max() == 0 and out[1].min() == 1000


def test_median_filter_removes_hot_pixels(noisy: np.ndarray) -> None:
    hot = noisy.copy()
    hot[0, 10, 10] = hot[1, 30, 40] = 65535
    out = median_filter(hot, radius=1)
    assert out.dtype == np.uint16 and out.max() < 1000


def test_unsharp_mask_sharpens_edges_and_clips() -> None:
    step = np.zeros((1, 32, 32), np.uint16)
    step[0, :, 16:] = 60000
    out = unsharp_mask(step, sigma=2, amount=2)
    assert out.dtype == np.uint16
    assert out[0, 5, 16] == 65535  # overshoot clipped to the dtype's range
    assert out[0, 5, 15] == 0  # undershoot clipped at 0
    as_float = unsharp_mask(step.astype(np.float32), sigma=2, amount=2)
    assert as_float[0, 5, 16] > 60000 and as_float[0, 5, 15] < 0


def test_clahe_returns_unit_float_or_same_dtype(noisy: np.ndarray) -> None:
    image, _ = spots_on_background((64, 64))
    stack = np.stack([image, image // 2])
    out = clahe(stack, clip_limit=0.02)
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    same = clahe(stack, output_dtype="same")
    assert same.dtype == np.uint16 and same.max() > 60000
    flat = clahe(np.full((1, 32, 32), 7, np.uint16))
    assert np.all(flat == 0)


@pytest.mark.parametrize("method", [tophat, rolling_ball])
def test_background_subtraction_keeps_spots_and_removes_background(method) -> None:
    image, spots = spots_on_background()
    out = method(image[np.newaxis], radius=20)
    assert out.dtype == np.uint16 and out.shape == (1, *image.shape)
    away = ~ndi.binary_dilation(spots, iterations=4)
    background, spot = np.median(out[0][away]), np.median(out[0][spots])
    assert background < 100  # was 400-700 (what is left is the camera-noise floor)
    assert 740 < spot - background < 860  # the +800 spots keep their height
    assert np.percentile(out[0][away], 95) - np.percentile(out[0][away], 5) < 150  # flat


@pytest.mark.parametrize("method", [tophat, rolling_ball])
def test_shrunk_background_approximates_the_exact_one(method) -> None:
    image, spots = spots_on_background(seed=2, noise=False)
    exact = method(image[np.newaxis], radius=24, downsample=1).astype(np.float64)
    fast = method(image[np.newaxis], radius=24, downsample=4).astype(np.float64)
    assert np.mean(np.abs(fast - exact)) < 8  # of a 400-700 background
    assert abs(np.median(fast[0][spots]) - np.median(exact[0][spots])) < 16


@pytest.mark.parametrize("method", [tophat, rolling_ball])
def test_shrinking_lowers_the_noise_bias(method) -> None:
    # at full resolution the background follows the noise minima, so the subtracted
    # image sits above 0; block averaging first averages the noise out
    image, spots = spots_on_background(seed=2)
    away = ~ndi.binary_dilation(spots, iterations=4)
    exact = method(image[np.newaxis], radius=24, downsample=1)[0][away]
    fast = method(image[np.newaxis], radius=24, downsample=4)[0][away]
    assert np.median(fast) < np.median(exact)


def test_background_output_returns_the_background() -> None:
    image, spots = spots_on_background()
    stack = image[np.newaxis]
    background = tophat(stack, radius=20, output="background")
    subtracted = tophat(stack, radius=20)
    total = background.astype(np.int64) + subtracted
    assert np.abs(total - stack).max() <= 1  # each rounded separately
    with pytest.raises(ValueError, match="output"):
        tophat(stack, output="both")  # type: ignore[arg-type]


def test_shrink_factor_and_block_mean() -> None:
    assert shrink_factor(50, 0) == 5 and shrink_factor(9, 0) == 1 and shrink_factor(50, 3) == 3
    with pytest.raises(ValueError, match="downsample"):
        shrink_factor(50, -1)
    image = np.arange(20, dtype=np.float64).reshape(4, 5)
    small = block_mean(image, 2)
    assert small.shape == (2, 3)
    assert small[0, 0] == image[:2, :2].mean() and small[0, 2] == image[:2, 4].mean()


def test_large_radius_on_a_camera_sized_image_is_fast() -> None:
    import time

    image = np.random.default_rng(0).poisson(500, (1, 1024, 1024)).astype(np.uint16)
    start = time.perf_counter()
    tophat(image, radius=60)
    rolling_ball(image, radius=60)
    assert time.perf_counter() - start < 3.0
