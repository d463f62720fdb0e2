"""Fast paths give exactly what the straightforward code gives."""

from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from napari_openhcs.core.well_state import WellState, stack_images, take_stack
from napari_openhcs.functions._percentile import percentiles
from napari_openhcs.functions.intensity import percentile_normalize

QS = [(0.5, 99.5), (0.0, 100.0), (25.0, 75.0), (0.0, 0.001), (99.999, 100.0), (13.7, 86.1)]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("size", [1, 2, 3, 10, 4097])
@pytest.mark.parametrize("kind", ["constant", "uniform", "two values", "extremes"])
def test_histogram_percentiles_equal_numpy_bit_for_bit(dtype: type, size: int, kind: str) -> None:
    rng = np.random.default_rng(size)
    top = np.iinfo(dtype).max
    data = {
        "constant": np.full(size, top // 3),
        "uniform": rng.integers(0, top + 1, size),
        "two values": rng.choice([3, 250], size),
        "extremes": rng.choice([0, top], size),
    }[kind].astype(dtype)
    for q in QS:
        ours, theirs = percentiles(data, list(q)), np.percentile(data, list(q))
        assert ours.dtype == theirs.dtype and ours.tobytes() == theirs.tobytes(), q


def test_percentiles_of_other_dtypes_and_strided_stacks() -> None:
    rng = np.random.default_rng(1)
    stack = rng.integers(0, 4000, (3, 40, 50)).astype(np.uint16)[:, ::2, ::-1]
    assert percentiles(stack, [1, 99]).tobytes() == np.percentile(stack, [1, 99]).tobytes()
    floats = rng.normal(size=(2, 10, 10))
    assert percentiles(floats, [1, 99]).tobytes() == np.percentile(floats, [1, 99]).tobytes()


@pytest.mark.parametrize("block", [7, 32 * 32, 1 << 16])  # blocks across rows, one per slice, larger
@pytest.mark.parametrize("per_slice", [False, True])
def test_percentile_normalize_matches_the_direct_formula(per_slice: bool, block: int, monkeypatch) -> None:
    from napari_openhcs.functions import intensity

    monkeypatch.setattr(intensity, "_UNIT_BLOCK", block)
    rng = np.random.default_rng(2)
    stack = rng.poisson(300, (4, 32, 32)).astype(np.uint16)
    stack[1] = 7  # a flat slice
    out = percentile_normalize(stack, low=0.5, high=99.5, per_slice=per_slice)
    axis = (1, 2) if per_slice else None
    lo = np.percentile(stack, 0.5, axis=axis, keepdims=per_slice)
    hi = np.percentile(stack, 99.5, axis=axis, keepdims=per_slice)
    span = hi - lo
    expected = (stack.astype(np.float32) - np.float32(lo)) / np.float32(np.where(span > 0, span, 1.0))
    expected = np.clip(np.where(span > 0, expected, 0.0), 0.0, 1.0).astype(np.float32)
    assert out.dtype == np.float32 and np.array_equal(out, expected)


def test_take_stack_empties_the_state_and_reuses_a_whole_block() -> None:
    block = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5).copy()  # a step's output
    keys = [(s, 1, 1, 1) for s in (1, 2, 3)]
    state = WellState({k: block[i] for i, k in enumerate(keys)})
    expected = stack_images(state, keys)
    out = take_stack(state, keys)
    assert out is block and np.array_equal(out, expected) and not state.images
    # slices of a block in another order, or separate arrays, are stacked as before
    state = WellState({k: block[2 - i] for i, k in enumerate(keys)})
    out = take_stack(state, keys)
    assert out is not block and np.array_equal(out, block[::-1])


@pytest.fixture(scope="module")
def tiny_inputs(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from napari_openhcs.core.compiler import well_input
    from napari_openhcs.microscopes.detect import open_plate
    from napari_openhcs.testing import make_synthetic_plate

    plate = make_synthetic_plate(tmp_path_factory.mktemp("plates"), spec="tiny", seed=3)
    return well_input(open_plate(plate), "A01")


def test_raw_groups_are_read_into_blocks_a_consuming_step_takes_without_a_copy(tiny_inputs) -> None:
    from napari_openhcs.core.components import Component
    from napari_openhcs.core.raw_images import read_well
    from napari_openhcs.core.well_state import group_keys

    keys = [(r.site, r.channel, r.z, r.t) for r in tiny_inputs.records]
    groups = [members for _, members in group_keys(keys, (Component.SITE,))]
    assert len(groups) > 1 and all(len(g) > 1 for g in groups)
    one_by_one = read_well(tiny_inputs)
    blocked = read_well(tiny_inputs, groups)
    assert blocked.images.keys() == one_by_one.images.keys()
    for key, image in one_by_one.images.items():
        assert np.array_equal(blocked.images[key], image) and blocked.images[key].dtype == image.dtype
    for group in groups:
        block = blocked.images[group[0]].base
        assert block.shape == (len(group), *tiny_inputs.image_shape)
        stack = take_stack(blocked, group)
        assert stack is block  # the stack the step gets is the block the files were read into
    assert not blocked.images


def test_raw_groups_match_the_groups_the_step_makes(tiny_inputs) -> None:
    from napari_openhcs.core.components import Component
    from napari_openhcs.core.raw_images import read_groups
    from napari_openhcs.core.well_state import group_images

    class Plan:  # the one field read_groups reads of a step plan
        def __init__(self, variable):  # noqa: ANN001, ANN204
            self.variable_components = variable

    for variable in [(Component.SITE,), (Component.CHANNEL,), (Component.Z_INDEX, Component.SITE)]:
        state = WellState({(r.site, r.channel, r.z, r.t): np.zeros(1) for r in tiny_inputs.records})
        expected = [keys for _, keys in group_images(state, variable)]
        assert read_groups(tiny_inputs, Plan(variable)) == expected
    assert read_groups(tiny_inputs, None) == []


def test_a_tiff_in_another_byte_order_is_converted_into_its_slice(tmp_path) -> None:
    import tifffile

    from napari_openhcs.microscopes.io_readers import ImageReadError, _read_tiff

    image = np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000
    path = tmp_path / "big_endian.tif"
    tifffile.imwrite(path, image, byteorder=">")
    block = np.zeros((2, 6, 8), dtype=np.uint16)
    out = _read_tiff(path, (), ((6, 8), np.uint16), block[1])
    assert out.base is block and np.array_equal(block[1], image) and not block[0].any()
    tifffile.imwrite(tmp_path / "float.tif", image.astype(np.float32))
    with pytest.raises(ImageReadError, match="float32 but uint16 was expected"):
        _read_tiff(tmp_path / "float.tif", (), None, block[0])
    with pytest.raises(ImageReadError, match="8x6 px but 6x8 px were expected"):
        _read_tiff(path, (), None, np.zeros((8, 6), np.uint16))


def test_a_tiff_page_read_before_is_read_again_without_parsing_the_file(tmp_path, monkeypatch) -> None:
    import os

    import tifffile

    from napari_openhcs.microscopes import io_readers

    image = (np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) * 7) % 65535
    path = tmp_path / "tile.tif"
    tifffile.imwrite(path, image, rowsperstrip=8)  # uncompressed, in 8 strips
    out = np.zeros((64, 48), np.uint16)
    io_readers._read_tiff(path, (), ((64, 48), np.uint16), out)
    assert np.array_equal(out, image) and (str(path), 0) in io_readers._LAYOUTS

    def no_parsing(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the file was parsed again")

    monkeypatch.setattr(tifffile, "TiffFile", no_parsing)
    again = np.zeros_like(out)
    io_readers._read_tiff(path, (), ((64, 48), np.uint16), again)
    assert np.array_equal(again, image)
    # a file rewritten since (its pixels elsewhere in it) is parsed again, not read blindly
    monkeypatch.undo()
    tifffile.imwrite(path, image[::-1].copy(), rowsperstrip=8, description="moved " * 300)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    io_readers._read_tiff(path, (), ((64, 48), np.uint16), again)
    assert np.array_equal(again, image[::-1])


def test_compressed_tiff_pages_are_always_decoded(tmp_path) -> None:
    import tifffile

    from napari_openhcs.microscopes import io_readers

    image = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32)
    path = tmp_path / "zlib.tif"
    tifffile.imwrite(path, image, compression="zlib")
    out = np.zeros_like(image)
    io_readers._read_tiff(path, (), ((32, 32), np.uint16), out)
    assert np.array_equal(out, image) and (str(path), 0) not in io_readers._LAYOUTS


# ------------------------------------------------------------------------------ read threads
def test_read_threads_follow_the_environment_and_refuse_nonsense(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import threading

    from napari_openhcs.core import raw_images

    keys = list(range(9))
    records = [SimpleNamespace(site=k, channel=1, z=1, t=1, path=f"f{k}") for k in keys]
    inputs = SimpleNamespace(records=records, dtype="uint16", image_shape=(4, 4))
    seen: set[str] = set()

    def fake_read(inp: Any, record: Any, out: Any = None) -> np.ndarray:
        seen.add(threading.current_thread().name)
        return np.zeros((4, 4), np.uint16)

    monkeypatch.setattr(raw_images, "read_record", fake_read)
    image_keys = [(k, 1, 1, 1) for k in keys]

    def threads_used() -> int:
        seen.clear()
        raw_images._read(inputs, image_keys, [image_keys])  # type: ignore[arg-type]
        return len(seen)

    monkeypatch.delenv(raw_images.READ_THREADS_ENV, raising=False)
    assert raw_images.read_threads() == raw_images.READ_THREADS == 2
    assert threads_used() <= 2
    monkeypatch.setenv(raw_images.READ_THREADS_ENV, "1")
    assert raw_images.read_threads() == 1
    assert threads_used() == 1
    barrier = threading.Barrier(6, timeout=10)  # six reads must be in flight at once

    def waiting_read(inp: Any, record: Any, out: Any = None) -> np.ndarray:
        if record.site < 6:
            barrier.wait()
        return fake_read(inp, record, out)

    monkeypatch.setattr(raw_images, "read_record", waiting_read)
    monkeypatch.setenv(raw_images.READ_THREADS_ENV, "8")
    assert threads_used() >= 6
    monkeypatch.setenv(raw_images.READ_THREADS_ENV, "lots")
    with caplog.at_level(logging.WARNING, logger=raw_images.__name__):
        assert raw_images.read_threads() == 2
    assert "NAPARI_OPENHCS_READ_THREADS" in caplog.text


@pytest.mark.parametrize("case", ["one plane", "three planes", "strided", "nan plane", "inf", "integers"])
def test_window_of_planes_equals_the_window_of_their_stack(case: str) -> None:
    from napari_openhcs.io._ngff import channel_window, planes_window

    rng = np.random.default_rng(7)
    data = rng.random((3, 1100, 1300)).astype(np.float32)  # over a million pixels: subsampled
    choices = {"one plane": [data[0]], "three planes": list(data), "strided": [p[5:, 3:1201] for p in data]}
    planes = choices.get(case, list(data[:, :300, :200]))
    if case == "nan plane":
        planes[1][:] = np.nan
    elif case == "inf":
        planes[2][4, 4] = np.inf
    elif case == "integers":
        planes = [(p * 4000).astype(np.uint16) for p in planes]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmin of a plane of NaN
        assert planes_window(planes) == channel_window(np.stack(planes))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_output_check_counts_nan_and_infinity_and_passes_sums_that_overflow(dtype: type) -> None:
    from napari_openhcs.core.errors import StepExecutionError
    from napari_openhcs.core.well_runner import _check_output

    call = SimpleNamespace(name="f")
    huge = np.full((2, 64, 64), np.finfo(dtype).max / 2, dtype=dtype)  # finite; its sum is not
    assert _check_output(huge, call, 2) is huge
    for bad, count in ((np.nan, 3), (np.inf, 1), (-np.inf, 2)):
        out = np.zeros((2, 8, 8), dtype=dtype)
        out.reshape(-1)[:count] = bad
        with pytest.raises(StepExecutionError, match=f"returned {count} NaN or infinite values"):
            _check_output(out, call, 2)


@pytest.mark.parametrize("shape", [(6, 8), (7, 8), (6, 9), (7, 9), (1, 1), (1, 5), (4, 1), (2, 3, 37, 64)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_downsampling_equals_averaging_the_edge_padded_image(
    shape: tuple[int, ...], dtype: type
) -> None:
    from napari_openhcs.io._pyramid import build_pyramid, downsample_2x

    image = (np.random.default_rng(len(shape)).random(shape) * 1000).astype(dtype)
    y, x = shape[-2:]
    padded = np.pad(image, [(0, 0)] * (len(shape) - 2) + [(0, y % 2), (0, x % 2)], mode="edge")
    expected = padded[..., 0::2, 0::2] + padded[..., 0::2, 1::2]
    expected += padded[..., 1::2, 0::2] + padded[..., 1::2, 1::2]
    expected /= 4
    np.testing.assert_array_equal(downsample_2x(image), expected)
    out = np.full(expected.shape, np.nan, dtype=dtype)
    assert downsample_2x(image, out=out) is out
    np.testing.assert_array_equal(out, expected)
    levels = build_pyramid(image, min_side=1, max_levels=2)
    np.testing.assert_array_equal(levels[1], expected)


MEAN_DTYPES = [np.uint8, np.uint16, np.int32, np.float16, np.float32, np.float64, np.bool_]


@pytest.mark.parametrize("dtype", MEAN_DTYPES)
def test_mean_of_one_slice_is_the_general_mean(dtype: type) -> None:
    from napari_openhcs.functions.projection import mean_projection

    rng = np.random.default_rng(11)
    signed = np.dtype(dtype).kind in "if"
    stack = (rng.random((1, 40, 30)) * 3e4 - (1e4 if signed else 0)).astype(dtype)
    if dtype in (np.float32, np.float64):  # tiny, and near float32's largest
        stack[0, 0, :3] = [1e-30, -3.3e38, 3.3e38]
    out = mean_projection(stack)
    general = stack.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
    assert out.dtype == np.float32 and out.shape == (1, 40, 30)
    np.testing.assert_array_equal(out, general)
    assert not np.shares_memory(out, stack)
