"""Reading the header of a MetaSeries TIFF (ImageXpress / MetaXpress) without its pixels.

MetaXpress writes single-page TIFFs whose ImageDescription is a ``<MetaData>`` XML
block of ``<prop id=... type=... value=...>`` and ``<custom-prop ...>`` entries. Only the
``id``/``value`` pairs are needed, so they are taken with a regular expression (no XML
parser, no entity expansion) and unescaped.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ._handler_utils import check_image_size
from ._tiff_ifd import read_first_ifd
from .detect import PlateFormatError

_PROP_RE = re.compile(r'<(?:custom-)?prop\s+id="([^"]*)"\s+type="[^"]*"\s+value="([^"]*)"')


@dataclass(frozen=True)
class ImageHeader:
    """Shape, dtype, compression and MetaSeries properties of one image file.

    Attributes
    ----------
    path
        The file read.
    shape
        ``(Y, X)`` in pixels.
    dtype
        NumPy dtype name (``"uint16"``).
    compressed
        Whether the pixel data are compressed.
    tags
        MetaSeries ``prop``/``custom-prop`` values by id, XML-escaped as in the file (empty
        when the file has none); read them with :meth:`text` or :meth:`number`.
    """

    path: Path
    shape: tuple[int, int]
    dtype: str
    compressed: bool
    tags: Mapping[str, str]

    def text(self, key: str) -> str | None:
        """Return property ``key``, unescaped (``None`` when absent or empty)."""
        value = self.tags.get(key)
        if not value:
            return None
        return html.unescape(value) if "&" in value else value

    def number(self, key: str) -> float | None:
        """Return property ``key`` as a float (``None`` when absent or not a number)."""
        value = self.tags.get(key)
        try:
            return float(value) if value else None
        except ValueError:
            return None

    @property
    def projection_method(self) -> str | None:
        """``Z Projection Method`` (``"Maximum"``, ``"Best Focus"``...) of a projection image."""
        return self.text("Z Projection Method")

    @property
    def z_step(self) -> int | None:
        """The ``Z Step`` (1-based plane number) of a plane image."""
        value = self.number("Z Step")
        return int(value) if value is not None else None

    @property
    def identity(self) -> tuple[str | None, str | None, str | None]:
        """What tells an acquired image from a copy of it: acquisition time, z, projection.

        MetaXpress exports copy z-less channels into every ``ZStep`` folder and channels
        acquired at fewer timepoints into later ``TimePoint`` folders; a copy keeps
        these values. ``(None, None, None)`` when the file has no MetaSeries metadata.
        """
        return (
            self.text("acquisition-time-local"),
            self.text("z-position"),
            self.projection_method,
        )


def parse_metaseries(description: str) -> dict[str, str]:
    """Return the ``prop``/``custom-prop`` values of a MetaSeries ImageDescription by id.

    Values are returned as written (XML-escaped); :meth:`ImageHeader.text` unescapes the
    ones that are used, which keeps reading thousands of headers fast.
    """
    if "<MetaData" not in description:
        return {}
    return dict(_PROP_RE.findall(description))


def read_header(path: Path) -> ImageHeader:
    """Read a TIFF's shape, dtype and MetaSeries properties from its header only.

    Parameters
    ----------
    path : Path
        The image file.

    Returns
    -------
    ImageHeader

    Raises
    ------
    PlateFormatError
        If the file is missing, truncated, not a TIFF, or not a single 2-D image.
    """
    try:
        fast = read_first_ifd(path)
    except OSError as exc:
        raise PlateFormatError(f"cannot read the TIFF header of {path}: {exc}") from exc
    if fast is not None:
        shape, dtype, compressed = fast.shape, fast.dtype, fast.compressed
        description, data_end, size = fast.description, fast.data_end, fast.file_size
    else:
        shape, dtype, compressed, description, data_end, size = _tifffile_header(path)
    if data_end > size:
        raise PlateFormatError(
            f"{path} is truncated: its pixel data end past the end of the file ({size} bytes)"
        )
    yx = check_image_size(shape, path)
    return ImageHeader(path, yx, dtype, compressed, parse_metaseries(description))


def _tifffile_header(path: Path) -> tuple[tuple[int, int], str, bool, str, int, int]:
    """The slower, thorough reading of :func:`read_header` (any TIFF tifffile reads)."""
    import numpy as np
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            shape = tuple(int(s) for s in page.shape)
            dtype = str(np.dtype(page.dtype))
            compressed = int(page.compression) != 1
            description = page.description or ""
            offsets, counts = page.dataoffsets, page.databytecounts
            size = int(tif.filehandle.size)
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise PlateFormatError(f"cannot read the TIFF header of {path}: {exc}") from exc
    if len(shape) > 2:
        shape = tuple(s for s in shape if s != 1)
    if len(shape) != 2:
        raise PlateFormatError(f"{path}: expected a 2-D image, found shape {shape}")
    end = max((int(o) + int(c) for o, c in zip(offsets, counts)), default=0)
    return (shape[0], shape[1]), dtype, compressed, description, end, size


def pixel_digest(path: Path) -> str:
    """Return a hash of an image's pixels (used only when metadata cannot tell copies apart)."""
    import tifffile

    try:
        data = tifffile.imread(path)
    except Exception as exc:
        raise PlateFormatError(f"cannot read TIFF {path}: {exc}") from exc
    return hashlib.sha1(data.tobytes()).hexdigest()
