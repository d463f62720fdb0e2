"""Storage backends (memory, .npy folder, Zarr group) behind one interface."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from napari_openhcs.io import (
    DiskBackend,
    MemoryBackend,
    StorageBackend,
    StorageFullError,
    ZarrBackend,
    inject_fault,
)

BACKENDS = ["memory", "disk", "zarr"]


def _backend(kind: str, tmp_path) -> StorageBackend:
    if kind == "memory":
        return MemoryBackend()
    if kind == "disk":
        return DiskBackend(tmp_path / "npy")
    return ZarrBackend(tmp_path / "store.zarr")


@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize(
    "data",
    [
        np.arange(2 * 3 * 1100 * 5, dtype=np.uint16).reshape(2, 3, 1100, 5),
        np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4),
        np.array([True, False, True]),
    ],
    ids=["uint16-4d", "float32-2d", "bool-1d"],
)
def test_round_trip(kind, data, tmp_path):
    store = _backend(kind, tmp_path)
    store.save("B03/step_1/ch1", data)
    got = store.load("B03/step_1/ch1")
    assert got.dtype == data.dtype
    np.testing.assert_array_equal(got, data)


@pytest.mark.parametrize("kind", BACKENDS)
def test_keys_exists_delete_and_overwrite(kind, tmp_path):
    store = _backend(kind, tmp_path)
    for key in ("B03/a", "B03/b", "B030/a", "C01/x/y"):
        store.save(key, np.zeros((2, 2), np.uint8))
    assert store.keys() == ["B03/a", "B03/b", "B030/a", "C01/x/y"]
    assert store.keys("B03") == ["B03/a", "B03/b"]
    assert store.keys("C01/") == ["C01/x/y"]
    assert store.exists("B03/a") and "B03/a" in store
    assert not store.exists("B03") and not store.exists("nope")
    store.save("B03/a", np.ones((3,), np.int64))
    np.testing.assert_array_equal(store.load("B03/a"), [1, 1, 1])
    store.delete("B03/a")
    store.delete("B03/a")  # absent: no error
    assert not store.exists("B03/a")
    with pytest.raises(KeyError, match="B03/a"):
        store.load("B03/a")


@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize("key", ["../escape", "/abs", "a/../../b", "a//b", "", "a\\b", "./a", "__x"])
def test_unsafe_keys_are_rejected(kind, key, tmp_path):
    store = _backend(kind, tmp_path)
    with pytest.raises(ValueError, match="key"):
        store.save(key, np.zeros(2))
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("kind", ["disk", "zarr"])
def test_full_disk_raises_storage_full_and_leaves_no_partial_array(kind, tmp_path):
    store = _backend(kind, tmp_path)
    store.save("keep", np.arange(10))
    data = np.random.default_rng(0).random((4, 600, 600))
    with inject_fault(errno.ENOSPC, after_bytes=50_000):
        with pytest.raises(StorageFullError, match="No space left") as info:
            store.save("B03/big", data)
    assert info.value.errno == errno.ENOSPC
    assert not store.exists("B03/big")
    assert store.keys() == ["keep"]
    assert not [p for p in tmp_path.rglob("*") if "partial" in p.name]


def test_zarr_backend_reopens_existing_store(tmp_path):
    ZarrBackend(tmp_path / "s.zarr").save("a/b", np.arange(4))
    np.testing.assert_array_equal(ZarrBackend(tmp_path / "s.zarr").load("a/b"), np.arange(4))
