"""Storage backends for step outputs: memory, a folder of ``.npy`` files, a Zarr group.

All three share one small interface, :class:`StorageBackend`. Keys are relative
POSIX paths such as ``"B03/step_2/ch1"``; keys that could escape the backend's
root (``..``, absolute paths, backslashes) are rejected.
"""

from __future__ import annotations

import logging
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from . import atomic

logger = logging.getLogger(__name__)

__all__ = ["DiskBackend", "MemoryBackend", "StorageBackend", "ZarrBackend", "validate_key"]


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative POSIX key, else raise ``ValueError``.

    A key is non-empty, relative, uses ``/`` as separator, and has no empty,
    ``.``, ``..`` or ``__``-prefixed parts.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"storage key must be a non-empty string, got {key!r}")
    if key.startswith("/") or "\\" in key or "\x00" in key or (len(key) > 1 and key[1] == ":"):
        raise ValueError(f"storage key {key!r} must be a relative POSIX path such as 'B03/ch1'")
    for part in key.split("/"):
        if part in ("", ".", "..") or part.startswith("__"):
            raise ValueError(
                f"storage key {key!r} has an invalid part {part!r} (no empty, '.', '..' or '__' parts)"
            )
    return key


def _prefix_ok(prefix: str) -> str:
    prefix = prefix.strip("/")
    if prefix:
        validate_key(prefix)
    return prefix


def _matches(key: str, prefix: str) -> bool:
    return not prefix or key == prefix or key.startswith(prefix + "/")


class StorageBackend(ABC):
    """Where step outputs live: a mapping from keys to arrays."""

    @abstractmethod
    def save(self, key: str, data: np.ndarray) -> None:
        """Store ``data`` under ``key`` (replacing any previous value)."""

    @abstractmethod
    def load(self, key: str) -> np.ndarray:
        """Return the array stored under ``key``; ``KeyError`` if there is none."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Return whether ``key`` holds an array."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` (no error if it is absent)."""

    @abstractmethod
    def keys(self, prefix: str = "") -> list[str]:
        """Return the sorted keys equal to ``prefix`` or below ``prefix/``."""

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.exists(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())


class MemoryBackend(StorageBackend):
    """Arrays kept in a dict (intermediates of one well).

    Arrays are stored as given, without a copy (they may be CuPy arrays); do not
    modify an array after saving it.
    """

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}

    def save(self, key: str, data: np.ndarray) -> None:
        """Store ``data`` under ``key`` (no copy)."""
        self._data[validate_key(key)] = data

    def load(self, key: str) -> np.ndarray:
        """Return the array stored under ``key``."""
        try:
            return self._data[validate_key(key)]
        except KeyError:
            raise KeyError(f"no array stored in memory under {key!r}") from None

    def exists(self, key: str) -> bool:
        """Return whether ``key`` holds an array."""
        return validate_key(key) in self._data

    def delete(self, key: str) -> None:
        """Remove ``key``."""
        self._data.pop(validate_key(key), None)

    def keys(self, prefix: str = "") -> list[str]:
        """Return the sorted keys under ``prefix``."""
        prefix = _prefix_ok(prefix)
        return sorted(k for k in self._data if _matches(k, prefix))

    def clear(self) -> None:
        """Drop every array."""
        self._data.clear()


class DiskBackend(StorageBackend):
    """A folder of ``.npy`` files, one per key (``<root>/<key>.npy``).

    Writes are atomic (temporary file + rename) and surface a full disk as
    :class:`~napari_openhcs.io.atomic.StorageFullError`.
    """

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.root = Path(root)
        self.fsync = fsync

    def _path(self, key: str) -> Path:
        *folders, name = validate_key(key).split("/")
        return self.root.joinpath(*folders, name + ".npy")

    def save(self, key: str, data: np.ndarray) -> None:
        """Write ``data`` to ``<root>/<key>.npy`` atomically."""
        arr = np.asarray(data)
        if arr.dtype == object:
            raise TypeError(f"cannot save key {key!r}: object arrays are not supported")
        path = self._path(key)

        def write(fh: IO[bytes]) -> None:
            np.save(_GuardedWriter(fh, path), arr, allow_pickle=False)

        atomic.atomic_write_with(path, write, fsync=self.fsync)

    def load(self, key: str) -> np.ndarray:
        """Read ``<root>/<key>.npy``."""
        path = self._path(key)
        try:
            return np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise KeyError(f"no array stored under {key!r} (expected {path})") from None

    def exists(self, key: str) -> bool:
        """Return whether ``<root>/<key>.npy`` exists."""
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        """Delete ``<root>/<key>.npy``."""
        self._path(key).unlink(missing_ok=True)

    def keys(self, prefix: str = "") -> list[str]:
        """Return the sorted keys under ``prefix``."""
        prefix = _prefix_ok(prefix)
        if not self.root.is_dir():
            return []
        out = []
        for path in self.root.rglob("*.npy"):
            if path.name.startswith("."):
                continue  # temporary file of a write in progress
            key = path.relative_to(self.root).with_suffix("").as_posix()
            if _matches(key, prefix):
                out.append(key)
        return sorted(out)

    def clear(self) -> None:
        """Delete the whole folder."""
        shutil.rmtree(self.root, ignore_errors=True)


class ZarrBackend(StorageBackend):
    """One Zarr v3 group on disk, one array per key (``<root>/<key>``).

    Arrays are zstd-compressed (Blosc) with chunks of at most 1024 pixels on the
    last two axes. A write that fails (full disk) removes the partial array, but
    a reader running at the same time may see it half written: use
    :class:`DiskBackend` where intermediate writes must be atomic.
    """

    def __init__(self, root: str | os.PathLike[str], *, chunk_yx: int = 1024) -> None:
        self.root = Path(root)
        self.chunk_yx = chunk_yx
        with atomic.storage_errors(self.root):
            self._group = self._open()

    def _open(self) -> Any:
        import zarr

        from ._store import GuardedLocalStore

        return zarr.open_group(GuardedLocalStore(self.root), mode="a", zarr_format=3)

    def _chunks(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        lead = tuple(1 for _ in shape[:-2])
        return lead + tuple(max(1, min(n, self.chunk_yx)) for n in shape[-2:])

    def save(self, key: str, data: np.ndarray) -> None:
        """Write ``data`` as the array ``<root>/<key>`` (replacing any previous one)."""
        from zarr.codecs import BloscCodec

        from ._well_tree import CLEVEL
        from ._zarr_v3 import BLOCKSIZE

        key = validate_key(key)
        arr = np.asarray(data)
        group = self._open()  # a store of its own, so a failed save can be stopped
        try:
            with atomic.storage_errors(self.root / key):
                out = group.create_array(
                    key,
                    shape=arr.shape,
                    dtype=arr.dtype,
                    chunks=self._chunks(arr.shape) if arr.ndim >= 2 else "auto",
                    compressors=BloscCodec(cname="zstd", clevel=CLEVEL, shuffle="shuffle",
                                           blocksize=BLOCKSIZE),
                    fill_value=0,
                    overwrite=True,
                )
                out[...] = arr
        except BaseException:
            group.store.stop_writes()
            self.delete(key)
            raise

    def load(self, key: str) -> np.ndarray:
        """Read the array ``<root>/<key>``."""
        if not self.exists(key):
            raise KeyError(f"no array stored under {key!r} in {self.root}")
        return np.asarray(self._group[key][...])

    def exists(self, key: str) -> bool:
        """Return whether ``key`` is an array of the group."""
        import zarr

        key = validate_key(key)
        try:
            node = self._group[key]
        except (KeyError, FileNotFoundError):
            return False
        return isinstance(node, zarr.Array)

    def delete(self, key: str) -> None:
        """Remove the array ``key`` (and its chunks)."""
        key = validate_key(key)
        shutil.rmtree(self.root.joinpath(*key.split("/")), ignore_errors=True)

    def keys(self, prefix: str = "") -> list[str]:
        """Return the sorted keys of the arrays under ``prefix``."""
        import zarr

        prefix = _prefix_ok(prefix)
        return sorted(
            name
            for name, node in self._group.members(max_depth=None)
            if isinstance(node, zarr.Array) and _matches(name, prefix)
        )


class _GuardedWriter:
    """File-like wrapper whose writes honour :mod:`.atomic` fault injection."""

    def __init__(self, fh: IO[bytes], path: Path) -> None:
        self._fh = fh
        self._path = path

    def write(self, data: bytes) -> int:
        atomic.write_guarded(self._fh, data, self._path)
        return len(memoryview(data).cast("B"))
