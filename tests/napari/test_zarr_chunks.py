"""Regions of Zarr arrays read chunk file by chunk file equal what Zarr reads, for v2 and v3 layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_openhcs._napari import _zarr_chunks as zc

SELECTIONS = [
    (0, 1, slice(0, 50), slice(0, 70)),  # a whole plane
    (1, 2, slice(5, 41), slice(30, 69)),  # across chunk borders, ending in the edge chunks
    (1, 0, slice(17, 18), slice(33, 34)),  # one pixel
    (0, 2, slice(0, 16), slice(0, 32)),  # exactly one chunk
]


def _data() -> np.ndarray:
    rng = np.random.default_rng(7)
    data = rng.integers(1, 60000, size=(2, 3, 50, 70)).astype(np.uint16)
    data[0, 0] = 0  # whole chunks at the fill value: not written
    return data


def _write(path: Path, **kwargs) -> np.ndarray:
    data = _data()
    arr = zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, fill_value=0,
                            config={"write_empty_chunks": False}, **kwargs)
    arr[:] = data
    return data


@pytest.mark.parametrize("kwargs", [
    {"chunks": (1, 2, 16, 32)},
    {"chunks": (1, 1, 50, 70), "compressors": [zarr.codecs.ZstdCodec(level=3)]},
    {"chunks": (2, 3, 16, 16), "compressors": [zarr.codecs.GzipCodec()]},
    {"chunks": (1, 2, 16, 32), "chunk_key_encoding": {"name": "v2", "separator": "."}},
    {"chunks": (1, 2, 16, 32), "zarr_format": 2, "compressors": None},
    {"chunks": (1, 2, 16, 32), "zarr_format": 2, "chunk_key_encoding": {"name": "v2", "separator": "/"}},
    {"chunks": (1, 2, 16, 32), "zarr_format": 2, "order": "F"},
], ids=["v3-blosc", "v3-zstd", "v3-gzip", "v3-v2keys", "v2-raw", "v2-slash", "v2-order-F"])
def test_regions_are_decoded_directly_and_match_zarr(tmp_path: Path, kwargs: dict) -> None:
    data = _write(tmp_path / "a.zarr", **kwargs)
    meta = zc.read_array_meta(str(tmp_path / "a.zarr"))
    assert meta is not None and meta.decode is not None  # read here, not through Zarr
    assert meta.shape == data.shape and meta.dtype == data.dtype
    for sel in SELECTIONS:
        np.testing.assert_array_equal(zc.read_region(str(tmp_path / "a.zarr"), meta, sel), data[sel])


def test_missing_chunks_read_as_the_fill_value(tmp_path: Path) -> None:
    data = _write(tmp_path / "a.zarr", chunks=(1, 1, 16, 32))
    assert not (tmp_path / "a.zarr" / "c" / "0" / "0" / "0" / "0").exists()  # an all-zero chunk
    folder = str(tmp_path / "a.zarr")
    meta = zc.read_array_meta(folder)
    np.testing.assert_array_equal(zc.read_region(folder, meta, SELECTIONS[0]), data[0, 1])
    np.testing.assert_array_equal(zc.read_region(folder, meta, (0, 0, slice(0, 50), slice(0, 70))),
                                  np.zeros((50, 70), np.uint16))


def test_sharded_arrays_are_read_through_zarr(tmp_path: Path) -> None:
    data = _write(tmp_path / "a.zarr", chunks=(1, 1, 16, 32), shards=(1, 1, 32, 64))
    meta = zc.read_array_meta(str(tmp_path / "a.zarr"))
    assert meta is not None and meta.decode is None
    for sel in SELECTIONS:
        np.testing.assert_array_equal(zc.read_region(str(tmp_path / "a.zarr"), meta, sel), data[sel])


def test_an_array_unlike_its_plate_neighbours_is_read_through_zarr(tmp_path: Path) -> None:
    """A field whose layout differs from the first field's (assumed for all of one canvas)."""
    _write(tmp_path / "first.zarr", chunks=(1, 1, 50, 70))
    small = np.arange(2 * 3 * 20 * 30, dtype=np.uint16).reshape(2, 3, 20, 30) + 1
    arr = zarr.create_array(str(tmp_path / "other.zarr"), shape=small.shape, dtype=small.dtype,
                            chunks=(1, 1, 20, 30), fill_value=0)
    arr[:] = small
    first = zc.read_array_meta(str(tmp_path / "first.zarr"))
    got = zc.read_region(str(tmp_path / "other.zarr"), first, (1, 2, slice(0, 50), slice(0, 70)))
    expected = np.zeros((50, 70), np.uint16)
    expected[:20, :30] = small[1, 2]  # the rest of the expected canvas is the fill value
    np.testing.assert_array_equal(got, expected)


def test_group_attributes_of_both_formats(tmp_path: Path) -> None:
    v3 = zarr.open_group(str(tmp_path / "v3"), mode="w", zarr_format=3)
    v3.attrs["ome"] = {"version": "0.5"}
    v2 = zarr.open_group(str(tmp_path / "v2"), mode="w", zarr_format=2)
    v2.attrs["multiscales"] = []
    zarr.open_group(str(tmp_path / "bare"), mode="w", zarr_format=2)
    assert zc.read_attrs(str(tmp_path / "v3")) == {"ome": {"version": "0.5"}}
    assert zc.read_attrs(str(tmp_path / "v2")) == {"multiscales": []}
    assert zc.read_attrs(str(tmp_path / "bare")) == {}
    assert zc.read_attrs(str(tmp_path / "nothing")) is None
