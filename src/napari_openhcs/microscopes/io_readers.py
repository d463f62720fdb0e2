"""Reading one image record's pixels (TIFF or Zarr), with errors that name the file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .plate import ImageRecord, Plate


class ImageReadError(OSError):
    """An image file could not be read (corrupt, truncated, missing, unreadable)."""


def resolve_inside(root: Path, relative: str) -> Path:
    """Join ``relative`` to ``root`` and refuse paths that escape ``root``.

    Raises
    ------
    ImageReadError
        If the resolved path lies outside ``root``.
    """
    root_resolved = Path(root).resolve()
    path = (root_resolved / relative).resolve()
    if path != root_resolved and root_resolved not in path.parents:
        raise ImageReadError(f"{relative!r} would escape the plate folder {root_resolved}")
    return path


def _read_tiff(path: Path, index: tuple[int, ...]) -> np.ndarray:
    import tifffile

    key = index[0] if index else 0
    try:
        data = tifffile.imread(path, key=key)
    except FileNotFoundError:
        raise ImageReadError(f"image file is missing: {path}") from None
    except PermissionError:
        raise ImageReadError(f"image file is not readable (permission denied): {path}") from None
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise ImageReadError(f"cannot read TIFF {path}: {exc}") from exc
    if data.ndim != 2:
        data = np.squeeze(data)
        if data.ndim != 2:
            raise ImageReadError(f"{path}: expected a 2-D image, found shape {data.shape}")
    return data


@lru_cache(maxsize=64)
def _open_zarr_array(path: str) -> Any:
    import zarr

    return zarr.open_array(store=path, mode="r")


def _read_zarr(path: Path, index: tuple[int, ...]) -> np.ndarray:
    try:
        arr = _open_zarr_array(str(path))
        data = np.asarray(arr[tuple(index)])
    except Exception as exc:
        raise ImageReadError(f"cannot read Zarr array {path} at {index}: {exc}") from exc
    if data.ndim != 2:
        raise ImageReadError(f"{path}{list(index)}: expected a 2-D plane, found shape {data.shape}")
    return data


_READERS = {"tiff": _read_tiff, "zarr": _read_zarr}


def read_record(plate: Plate, record: ImageRecord) -> np.ndarray:
    """Read one record of ``plate`` as a 2-D array.

    Parameters
    ----------
    plate : Plate
        The plate the record belongs to (gives the root folder and the reader).
    record : ImageRecord
        The image to read.

    Returns
    -------
    numpy.ndarray
        The 2-D image.

    Raises
    ------
    ImageReadError
        If the file is missing, unreadable, corrupt, not 2-D, or outside the plate.
    """
    try:
        reader = _READERS[plate.reader]
    except KeyError:
        raise ImageReadError(f"unknown reader {plate.reader!r} for plate {plate.root}") from None
    path = resolve_inside(plate.root, record.path)
    return reader(path, record.index)
