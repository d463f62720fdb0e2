"""The ``Plate`` model every microscope handler produces.

A plate is a set of image records ``(well, site, channel, z, t) -> location`` plus
metadata (channel names, pixel size, site grid and stage positions, plate layout).
Everything here is frozen and picklable so it can travel to worker processes.
"""

from __future__ import annotations

import logging
import re
import string
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..core.components import Component

logger = logging.getLogger(__name__)

_WELL_RE = re.compile(r"^([A-Z]{1,2})(\d{1,3})$")

#: Standard plate formats: wells -> (rows, columns).
PLATE_FORMATS: dict[int, tuple[int, int]] = {
    6: (2, 3),
    12: (3, 4),
    24: (4, 6),
    48: (6, 8),
    96: (8, 12),
    384: (16, 24),
    1536: (32, 48),
}


def row_name(row: int) -> str:
    """Return the row letters for a 0-based row index (0 → ``A``, 26 → ``AA``)."""
    letters = string.ascii_uppercase
    if row < 26:
        return letters[row]
    return letters[row // 26 - 1] + letters[row % 26]


def row_index(name: str) -> int:
    """Return the 0-based row index for row letters (``A`` → 0, ``AF`` → 31)."""
    name = name.upper()
    if len(name) == 1:
        return ord(name) - ord("A")
    return (ord(name[0]) - ord("A") + 1) * 26 + ord(name[1]) - ord("A")


def well_name(row: int, column: int) -> str:
    """Return the canonical well name for 0-based ``row`` and 1-based ``column`` (``B03``)."""
    return f"{row_name(row)}{column:02d}"


def parse_well(name: str) -> tuple[int, int]:
    """Split a well name into ``(row_index, column)``; row 0-based, column 1-based.

    Raises
    ------
    ValueError
        If ``name`` is not a well name such as ``B03`` or ``AA12``.
    """
    m = _WELL_RE.match(name.strip().upper())
    if not m:
        raise ValueError(f"{name!r} is not a well name (expected e.g. 'B03' or 'AA12')")
    return row_index(m.group(1)), int(m.group(2))


def canonical_well(name: str) -> str:
    """Normalise a well name (``b3`` → ``B03``)."""
    r, c = parse_well(name)
    return well_name(r, c)


def layout_for_wells(wells: tuple[str, ...] | list[str], declared: int | None = None) -> tuple[int, int]:
    """Return ``(rows, columns)`` of the smallest standard plate holding ``wells``."""
    if declared in PLATE_FORMATS:
        return PLATE_FORMATS[declared]  # type: ignore[index]
    max_r = max((parse_well(w)[0] + 1 for w in wells), default=1)
    max_c = max((parse_well(w)[1] for w in wells), default=1)
    for _, (r, c) in sorted(PLATE_FORMATS.items()):
        if max_r <= r and max_c <= c:
            return r, c
    return max_r, max_c


def fit_layout(
    declared: tuple[int, int] | None, wells: tuple[str, ...] | list[str], source: str = ""
) -> tuple[int, int]:
    """Return the plate layout ``(rows, columns)``: the declared one, widened to hold ``wells``.

    The files are the truth: a well on disk outside the layout a plate declares (an HTD's
    ``YWells``/``XWells``, Harmony's ``PlateRows``/``PlateColumns``, an OME-Zarr plate's
    row and column lists) widens that layout just enough to hold it, with a warning naming
    ``source``. Without a declared layout, the smallest standard plate holding the wells.
    """
    if declared is None:
        return layout_for_wells(wells)
    rows, columns = declared
    need_r = max((parse_well(w)[0] + 1 for w in wells), default=1)
    need_c = max((parse_well(w)[1] for w in wells), default=1)
    if need_r <= rows and need_c <= columns:
        return rows, columns
    outside = [w for w in sorted(wells) if parse_well(w)[0] >= rows or parse_well(w)[1] > columns]
    wide = (max(rows, need_r), max(columns, need_c))
    logger.warning("%s declares a %d x %d plate but well(s) %s are on disk outside it; "
                   "using %d x %d", source or "the plate", rows, columns, ", ".join(outside[:10]), *wide)
    return wide


@dataclass(frozen=True, slots=True, order=True)
class ImageRecord:
    """One 2-D image of the plate and where it lives.

    Attributes
    ----------
    well, site, channel, z, t
        The image's components. Sites, channels, z and t are 1-based integers.
    path
        Location relative to the plate root (POSIX separators): a TIFF file, or
        for OME-Zarr input the path of the array inside the plate.
    index
        Selection inside the file: the leading indices of a Zarr array (``(t, c, z)``)
        or ``(page,)`` for a multi-page TIFF; empty for a single-page TIFF.
    """

    well: str
    site: int
    channel: int
    z: int
    t: int
    path: str
    index: tuple[int, ...] = ()

    def component(self, comp: Component) -> str | int:
        """Return this record's value for ``comp``."""
        return {
            Component.WELL: self.well,
            Component.SITE: self.site,
            Component.CHANNEL: self.channel,
            Component.Z_INDEX: self.z,
            Component.TIMEPOINT: self.t,
        }[comp]


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A channel of the plate: 1-based index, name, and optional wavelength/colour."""

    index: int
    name: str
    wavelength_nm: float | None = None
    color: str | None = None  # "RRGGBB"


@dataclass(frozen=True)
class Plate:
    """A plate as read from disk: image records plus metadata. Frozen and picklable.

    Attributes
    ----------
    root
        Plate folder (read-only to us).
    microscope
        Format name of the handler that read it (``"imagexpress"``, ``"opera_phenix"``,
        ``"omezarr"``, ``"yokogawa"``).
    name
        Plate name.
    rows, columns
        Plate layout (8 × 12 for a 96-well plate).
    wells
        Wells that have images, sorted.
    sites, channels, z_indices, timepoints
        Component values present in the records (1-based).
    image_shape, dtype
        Shape ``(Y, X)`` and dtype of one image.
    pixel_size_um
        µm per pixel (``None`` if unknown).
    z_spacing_um
        Distance between planes in µm (``None`` if unknown or a single plane).
    site_grid
        ``(rows, columns)`` of the site grid, if known.
    site_positions
        Stage positions ``(well, site, y_um, x_um)`` with image-y pointing down.
    records
        Every image record.
    missing
        ``(well, message)`` for images the metadata declares but the disk lacks.
    source
        Which image set was read (``"planes"`` or ``"projections"``).
    reader
        How records are read: ``"tiff"`` or ``"zarr"``.
    metadata
        Free-form ``(key, value)`` pairs for display (instrument, objective, ...).
    """

    root: Path
    microscope: str
    name: str
    rows: int
    columns: int
    wells: tuple[str, ...]
    sites: tuple[int, ...]
    channels: tuple[ChannelInfo, ...]
    z_indices: tuple[int, ...]
    timepoints: tuple[int, ...]
    image_shape: tuple[int, int]
    dtype: str
    records: tuple[ImageRecord, ...]
    pixel_size_um: float | None = None
    z_spacing_um: float | None = None
    site_grid: tuple[int, int] | None = None
    site_positions: tuple[tuple[str, int, float, float], ...] = ()
    missing: tuple[tuple[str, str], ...] = ()
    source: str = "planes"
    reader: str = "tiff"
    metadata: tuple[tuple[str, str], ...] = field(default=())

    # ------------------------------------------------------------------ queries
    @cached_property
    def _by_well(self) -> dict[str, tuple[ImageRecord, ...]]:
        out: dict[str, list[ImageRecord]] = {}
        for rec in self.records:
            out.setdefault(rec.well, []).append(rec)
        return {w: tuple(sorted(v)) for w, v in out.items()}

    def records_for(self, well: str) -> tuple[ImageRecord, ...]:
        """Return the records of one well, sorted by (site, channel, z, t)."""
        return self._by_well.get(well, ())

    def values(self, comp: Component) -> tuple[str, ...] | tuple[int, ...]:
        """Return the values present for ``comp`` (wells, sites, channels, z or t)."""
        if comp is Component.WELL:
            return self.wells
        if comp is Component.SITE:
            return self.sites
        if comp is Component.CHANNEL:
            return tuple(c.index for c in self.channels)
        if comp is Component.Z_INDEX:
            return self.z_indices
        return self.timepoints

    def channel_name(self, index: int) -> str:
        """Return the name of channel ``index`` (``"w<index>"`` if unnamed)."""
        for ch in self.channels:
            if ch.index == index:
                return ch.name
        return f"w{index}"

    def site_position_um(self, well: str, site: int) -> tuple[float, float] | None:
        """Return the stage position ``(y, x)`` in µm of a site, if known."""
        for w, s, y, x in self.site_positions:
            if w == well and s == site:
                return (y, x)
        return None

    def missing_for(self, well: str) -> tuple[str, ...]:
        """Return the messages about images missing from ``well``."""
        return tuple(msg for w, msg in self.missing if w == well)

    def image_bytes(self) -> int:
        """Return the size in bytes of one image."""
        return int(np.prod(self.image_shape)) * np.dtype(self.dtype).itemsize

    def read(self, record: ImageRecord) -> np.ndarray:
        """Read one record's pixels as a 2-D array (see :func:`read_record`)."""
        from .io_readers import read_record

        return read_record(self, record)
