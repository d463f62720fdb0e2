"""Intensity normalization, rescaling and dtype conversion."""

from __future__ import annotations

import numpy as np
import pytest

from napari_openhcs.functions.intensity import (
    convert_dtype,
    invert_intensity,
    percentile_normalize,
    rescale_intensity,
)


@pytest.fixture
def stack() -> np.ndarray:
    """Two sites of a nuclear stain, the second twice as bright."""
    rng = np.random.default_rng(3)
    base = np.full((2, 64, 64), 150.0)
    base[:, 20:40, 20:40] += 1000
    base[1] *= 2
    return rng.poisson(base).astype(np.uint16)


def test_percentile_normalize_whole_stack_keeps_relative_brightness(stack: np.ndarray) -> None:
    out = percentile_normalize(stack, low=1, high=99)
    assert out.dtype == np.float32 and out.shape == stack.shape
    assert out.min() == 0.0 and out.max() == 1.0
    lo, hi = np.percentile(stack, [1, 99])
    expected = np.clip((stack.astype(np.float64) - lo) / (hi - lo), 0, 1)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert out[1, 30, 30] > out[0, 30, 30]  # the brighter site stays brighter


def test_percentile_normalize_per_slice_fills_each_slice(stack: np.ndarray) -> None:
    out = percentile_normalize(stack, low=0.5, high=99.5, per_slice=True)
    for i in range(2):
        lo, hi = np.percentile(stack[i], [0.5, 99.5])
        np.testing.assert_allclose(out[i], np.clip((stack[i] - lo) / (hi - lo), 0, 1), atol=1e-6)
    assert abs(float(out[0, 30, 30]) - float(out[1, 30, 30])) < 0.2


def test_percentile_normalize_same_dtype_uses_full_integer_range(stack: np.ndarray) -> None:
    out = percentile_normalize(stack, low=1, high=99, output_dtype="same")
    assert out.dtype == np.uint16
    assert out.min() == 0 and out.max() == 65535
    as_float = percentile_normalize(stack.astype(np.float64), output_dtype="same")
    assert as_float.dtype == np.float64 and as_float.max() <= 1.0


def test_percentile_normalize_constant_slice_gives_zeros() -> None:
    flat = np.full((2, 8, 8), 500, dtype=np.uint16)
    flat[1] = np.arange(64, dtype=np.uint16).reshape(8, 8)
    out = percentile_normalize(flat, per_slice=True)
    assert np.all(out[0] == 0) and out[1].max() == 1.0 and np.isfinite(out).all()


@pytest.mark.parametrize(("low", "high"), [(50, 50), (-1, 90), (10, 101), (60, 40)])
def test_percentile_normalize_rejects_bad_percentiles(stack: np.ndarray, low: float, high: float) -> None:
    with pytest.raises(ValueError, match="percentiles"):
        percentile_normalize(stack, low=low, high=high)


def test_percentile_normalize_rejects_unknown_output_dtype(stack: np.ndarray) -> None:
    with pytest.raises(ValueError, match="output_dtype"):
        percentile_normalize(stack, output_dtype="uint8")  # type: ignore[arg-type]


def test_rescale_intensity_uses_a_fixed_window(stack: np.ndarray) -> None:
    out = rescale_intensity(stack, in_min=100, in_max=2100)
    np.testing.assert_allclose(out, np.clip((stack - 100.0) / 2000.0, 0, 1), atol=1e-6)
    # the same window for both sites: the ratio of the object intensities is kept
    assert out[1, 30, 30] > 1.5 * out[0, 30, 30]
    default = rescale_intensity(stack)
    np.testing.assert_allclose(default, stack / 65535.0, atol=1e-6)
    assert rescale_intensity(stack, in_max=2100, output_dtype="same").dtype == np.uint16


def test_rescale_intensity_rejects_empty_window(stack: np.ndarray) -> None:
    with pytest.raises(ValueError, match="in_max"):
        rescale_intensity(stack, in_min=500, in_max=500)


@pytest.mark.parametrize(
    ("values", "dtype", "mode", "expected"),
    [
        (np.array([0, 257, 65535], np.uint16), "uint8", "rescale", [0, 1, 255]),
        (np.array([0, 300, 65535], np.uint16), "uint8", "clip", [0, 255, 255]),
        (np.array([0, 255], np.uint8), "uint16", "rescale", [0, 65535]),
        (np.array([0.0, 0.5, 1.0, 1.5], np.float32), "uint16", "rescale", [0, 32768, 65535, 65535]),
        (np.array([-5.0, 3.4, 70000.0]), "uint16", "clip", [0, 3, 65535]),
        (np.array([0, 65535], np.uint16), "float32", "rescale", [0.0, 1.0]),
        (np.array([7, 65535], np.uint16), "float32", "clip", [7.0, 65535.0]),
    ],
)
def test_convert_dtype(values: np.ndarray, dtype: str, mode: str, expected: list[float]) -> None:
    out = convert_dtype(values.reshape(1, 1, -1), dtype=dtype, mode=mode)  # type: ignore[arg-type]
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out.ravel(), expected)


def test_convert_dtype_rejects_unknown_target() -> None:
    with pytest.raises(ValueError, match="dtype"):
        convert_dtype(np.zeros((1, 2, 2), np.uint16), dtype="int8")  # type: ignore[arg-type]


def test_invert_intensity_keeps_dtype() -> None:
    assert invert_intensity(np.array([[[0, 65535]]], np.uint16)).tolist() == [[[65535, 0]]]
    assert invert_intensity(np.array([[[-128, 127]]], np.int8)).tolist() == [[[127, -128]]]
    out = invert_intensity(np.array([[[0.25]]], np.float32))
    assert out.dtype == np.float32 and out.item() == 0.75
    assert invert_intensity(np.array([[[True, False]]])).tolist() == [[[False, True]]]


def test_single_image_is_treated_as_a_stack_of_one() -> None:
    out = percentile_normalize(np.arange(16, dtype=np.uint16).reshape(4, 4))
    assert out.shape == (1, 4, 4)
