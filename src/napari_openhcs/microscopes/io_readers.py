"""Reading one image record's pixels (TIFF or Zarr), with errors that name the file."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .plate import ImageRecord, Plate


#: Largest 2-D image (pixels) a file may declare; more means a corrupt header.
MAX_IMAGE_PIXELS = 1 << 31

#: The plate's ``((Y, X), dtype)`` an image must match (``None``: not checked).
Expected = tuple[tuple[int, ...], Any] | None


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


def _plane_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Return ``shape`` without its singleton axes when it is not 2-D already."""
    return shape if len(shape) == 2 else tuple(s for s in shape if s != 1)


def _check_header(path: Path, shape: tuple[int, ...], dtype: np.dtype, expected: Expected) -> None:
    """Refuse an image whose header disagrees with the plate, before any pixel is decoded.

    A corrupt or foreign file may declare e.g. 100000 x 100000 px: decoding it would
    allocate tens of GB, so the declared size is checked first.
    """
    plane = _plane_shape(tuple(int(s) for s in shape))
    if expected is not None:
        exp_shape, exp_dtype = expected
        if len(plane) == 2 and plane != tuple(exp_shape):
            raise ImageReadError(
                f"{path}: image is {plane[1]}x{plane[0]} px but the plate's images are "
                f"{exp_shape[1]}x{exp_shape[0]} px"
            )
        got, want = np.dtype(dtype), np.dtype(exp_dtype) if exp_dtype is not None else None
        if want is not None and (got.kind, got.itemsize) != (want.kind, want.itemsize):  # any byte order
            raise ImageReadError(
                f"{path}: image pixels are {np.dtype(dtype)} but the plate's images are "
                f"{np.dtype(exp_dtype)}"
            )
    if int(np.prod(plane, dtype=np.int64)) > MAX_IMAGE_PIXELS:
        raise ImageReadError(
            f"{path}: declared image size {'x'.join(map(str, plane[::-1]))} px is not plausible "
            f"(more than {MAX_IMAGE_PIXELS} pixels); the file is corrupt"
        )


def _read_tiff(
    path: Path, index: tuple[int, ...], expected: Expected = None, out: np.ndarray | None = None
) -> np.ndarray:
    import tifffile

    key = index[0] if index else 0
    if out is not None and _read_known_layout(path, key, out):
        return out
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[key]
            _check_header(path, tuple(page.shape), page.dtype, expected)
            if out is not None and tuple(page.shape) == out.shape and page.dtype == out.dtype:
                page.asarray(out=out)  # decoded straight into the caller's buffer
                _remember_layout(path, key, page, out)
                return out
            data = page.asarray()
    except ImageReadError:
        raise
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
    return _into(data, out, path)


#: Where the pixels of uncompressed TIFF pages read before lie in their files, by
#: ``(path, page)``: ``(mtime_ns, size, offset, shape, dtype)``. A well's raw images are
#: read twice in a run (the pipeline's start is read again for a later step); the second
#: read then copies the pixels straight into place without parsing the file again.
_LAYOUTS: dict[tuple[str, int], tuple[int, int, int, tuple[int, ...], np.dtype]] = {}
_MAX_LAYOUTS = 1 << 16


def _remember_layout(path: Path, key: int, page: Any, out: np.ndarray) -> None:
    """Note where ``page``'s pixels lie when they are stored as they lie in memory."""
    try:
        # memmappable: one contiguous, uncompressed run of pixels in their final form
        if not (page.is_memmappable and page.dtype.isnative
                and page.nbytes == out.nbytes and out.flags.c_contiguous):
            return
        st = os.stat(path)
    except (OSError, AttributeError):
        return
    if len(_LAYOUTS) >= _MAX_LAYOUTS:
        _LAYOUTS.clear()
    _LAYOUTS[(str(path), key)] = (st.st_mtime_ns, st.st_size, int(page.dataoffsets[0]), out.shape, out.dtype)


def _read_known_layout(path: Path, key: int, out: np.ndarray) -> bool:
    """Read a page whose layout is known into ``out``; ``False`` if unknown or the file changed."""
    layout = _LAYOUTS.get((str(path), key))
    if layout is None or layout[3:] != (out.shape, out.dtype) or not out.flags.c_contiguous:
        return False
    try:
        with open(path, "rb", buffering=0) as fh:
            st = os.fstat(fh.fileno())
            if (st.st_mtime_ns, st.st_size) != layout[:2]:
                return False
            fh.seek(layout[2])
            view = memoryview(out).cast("B")
            done = 0
            while done < out.nbytes:
                n = fh.readinto(view[done:])
                if not n:
                    return False
                done += n
    except OSError:
        return False  # the full read names the problem
    return True


def _into(data: np.ndarray, out: np.ndarray | None, name: object) -> np.ndarray:
    """Return ``data``, or copy it into ``out`` (same shape and pixel type, any byte order)."""
    if out is None:
        return data
    if data.shape != out.shape:
        raise ImageReadError(f"{name}: image is {data.shape[1]}x{data.shape[0]} px but "
                             f"{out.shape[1]}x{out.shape[0]} px were expected")
    if (data.dtype.kind, data.dtype.itemsize) != (out.dtype.kind, out.dtype.itemsize):
        raise ImageReadError(f"{name}: image pixels are {data.dtype} but {out.dtype} was expected")
    np.copyto(out, data)
    return out


@lru_cache(maxsize=64)
def _open_zarr_array(path: str) -> Any:
    import zarr

    return zarr.open_array(store=path, mode="r")


def _read_zarr(
    path: Path, index: tuple[int, ...], expected: Expected = None, out: np.ndarray | None = None
) -> np.ndarray:
    try:
        arr = _open_zarr_array(str(path))
        data = np.asarray(arr[tuple(index)])
    except Exception as exc:
        raise ImageReadError(f"cannot read Zarr array {path} at {index}: {exc}") from exc
    if data.ndim != 2:
        raise ImageReadError(f"{path}{list(index)}: expected a 2-D plane, found shape {data.shape}")
    return _into(data, out, f"{path}{list(index)}")


_READERS = {"tiff": _read_tiff, "zarr": _read_zarr}


def read_record(plate: Plate, record: ImageRecord, out: np.ndarray | None = None) -> np.ndarray:
    """Read one record of ``plate`` as a 2-D array.

    Parameters
    ----------
    plate : Plate
        The plate the record belongs to (gives the root folder and the reader).
    record : ImageRecord
        The image to read.
    out : ndarray, optional
        A 2-D array of the image's shape to read the pixels into (e.g. one slice of a
        stack), of the image's pixel type (any byte order).

    Returns
    -------
    numpy.ndarray
        The 2-D image (``out`` itself when given).

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
    shape = getattr(plate, "image_shape", None)
    expected: Expected = (tuple(shape), getattr(plate, "dtype", None)) if shape else None
    return reader(path, record.index, expected, out)
