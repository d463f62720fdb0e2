"""Reading MetaXpress ``.HTD`` plate description files.

An HTD is line based, ``"Key", value[, value...]`` with CRLF line endings, from
``"HTSInfoFile", Version 1.0`` to ``"EndFile"``. Values are bare words (``TRUE``, ``12``)
or double-quoted strings. The ``Description`` may hold non-UTF-8 bytes (MetaXpress uses
the byte pair ``0x82 0x81`` as a line separator), so the file is decoded as latin-1,
which never fails. Lines that do not parse are skipped, not fatal: the image files are
the truth and the HTD only adds names and declared counts.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

from .detect import PlateFormatError

logger = logging.getLogger(__name__)

#: Largest HTD we read; real ones are a few kB even for 1536-well plates.
_MAX_HTD_BYTES = 4 << 20

#: MetaXpress's in-value line separator (``0x82 0x81``) after latin-1 decoding.
_LINE_SEPARATOR = "\x82\x81"


@dataclass(frozen=True)
class HTD:
    """The parts of an HTD file the handler uses.

    Attributes
    ----------
    path
        The file read.
    values
        Every ``key -> values`` pair, values as strings without quotes.
    """

    path: Path
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        """Return the first value of ``key`` (``None`` when absent or empty)."""
        vals = self.values.get(key)
        return vals[0] if vals else None

    def integer(self, key: str) -> int | None:
        """Return ``key`` as an integer (``None`` when absent or not a number)."""
        raw = self.get(key)
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            logger.warning("%s: %s=%r is not a number; ignored", self.path, key, raw)
            return None

    def flag(self, key: str) -> bool | None:
        """Return ``key`` as a boolean (``None`` when absent)."""
        raw = self.get(key)
        return None if raw is None else raw.strip().upper() == "TRUE"

    @property
    def layout(self) -> tuple[int, int] | None:
        """``(rows, columns)`` from ``YWells``/``XWells`` (``None`` when absent or absurd)."""
        rows, columns = self.integer("YWells"), self.integer("XWells")
        if rows and columns and 0 < rows <= 64 and 0 < columns <= 96:
            return rows, columns
        return None

    @property
    def pixel_size_um(self) -> float | None:
        """``PixelSizeUM`` (written by OpenHCS's synthetic plates; ``None`` when absent or absurd)."""
        raw = self.get("PixelSizeUM")
        try:
            value = float(raw) if raw is not None else None
        except ValueError:
            logger.warning("%s: PixelSizeUM=%r is not a number; ignored", self.path, raw)
            return None
        return value if value is not None and 0 < value < 1e4 else None

    @property
    def selected_wells(self) -> list[tuple[int, int]]:
        """``(row index 0-based, column 1-based)`` of the wells marked TRUE in ``WellsSelection<n>``."""
        out: list[tuple[int, int]] = []
        for key, vals in self.values.items():
            if key.startswith("WellsSelection") and key[14:].isdigit():
                row = int(key[14:]) - 1
                out.extend((row, col + 1) for col, v in enumerate(vals) if v.upper() == "TRUE")
        return sorted(out)

    @property
    def site_grid(self) -> tuple[int, int] | None:
        """``(YSites, XSites)`` when sites are on, ``(1, 1)`` when off, ``None`` when unknown."""
        sites = self.flag("Sites")
        if sites is False:
            return (1, 1)
        ys, xs = self.integer("YSites"), self.integer("XSites")
        return (ys, xs) if ys and xs and ys > 0 and xs > 0 else None

    @property
    def selected_site_count(self) -> int | None:
        """How many sites ``SiteSelection<row>`` marks TRUE (``None`` when not listed)."""
        rows = [v for k, v in self.values.items() if k.startswith("SiteSelection")]
        if not rows:
            return None
        return sum(1 for vals in rows for v in vals if v.upper() == "TRUE")

    def wave_names(self) -> dict[int, str]:
        """``{wave: name}`` from ``WaveName<n>``."""
        out = {}
        for key, vals in self.values.items():
            if key.startswith("WaveName") and key[8:].isdigit() and vals and vals[0].strip():
                out[int(key[8:])] = vals[0].strip()
        return out

    @property
    def description(self) -> str:
        """The ``Description`` with MetaXpress's line separators shown as `` / ``."""
        text = self.get("Description") or ""
        return " / ".join(part.strip() for part in text.split(_LINE_SEPARATOR) if part.strip())


def parse_htd_text(text: str, path: Path) -> HTD:
    """Parse the decoded text of an HTD file (see :func:`read_htd`)."""
    values: dict[str, tuple[str, ...]] = {}
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    try:
        for row in reader:
            if not row or not row[0].strip():
                continue
            key = row[0].strip()
            if key in values:
                continue
            values[key] = tuple(v.strip() for v in row[1:])
    except csv.Error as exc:
        logger.warning("%s: stopped reading at a malformed line (%s)", path, exc)
    if "HTSInfoFile" not in values:
        raise PlateFormatError(
            f"{path} is not a MetaXpress HTD file (its first line should be "
            '\'"HTSInfoFile", Version 1.0\')'
        )
    return HTD(path=path, values=values)


def read_htd(path: Path) -> HTD:
    """Read an HTD file.

    Parameters
    ----------
    path : Path
        The ``<plate>.HTD`` file.

    Returns
    -------
    HTD

    Raises
    ------
    PlateFormatError
        If the file cannot be read, is implausibly large, or does not start as an HTD.
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_MAX_HTD_BYTES + 1)
    except OSError as exc:
        raise PlateFormatError(f"cannot read HTD file {path}: {exc}") from exc
    if len(raw) > _MAX_HTD_BYTES:
        raise PlateFormatError(f"{path} is larger than {_MAX_HTD_BYTES >> 20} MiB; not an HTD file")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    return parse_htd_text(raw.decode("latin-1"), path)
